import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PAD_SHARED_DATA") or ROOT.parent / "shared" / "data")  # real data, never in the repo


# One torch thread per process, here and in the CLIs the tests start (they inherit it): the
# suite runs two test files at once on two cores, and torch's thread pools spinning against
# each other made a tiny model's step several times slower than one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Compiled bytecode is cached, here and in the processes the tests start. With
# PYTHONDONTWRITEBYTECODE set (as on the CI machines) and a fresh virtualenv, every CLI, notebook
# and bench a test starts compiled torch and transformers from source again: ~8 s a process.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


# The files that take longest start first (two workers, one file each at a time): with the
# longest last, one worker would run it alone at the end. Others keep their collection order.
LONGEST_FIRST = ("test_refine.py", "test_stepwise.py", "test_pad_train.py", "test_ray_engine.py",
                 "test_check_curate_export.py", "test_generate.py", "test_ingest.py", "test_execute_and_cli.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_configure(config):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) everything is installed: a skipped test is a hidden failure."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped in CI, where every dependency is installed: {reason}"


@pytest.fixture
def db(tmp_path):
    """Path of a fresh DuckDB store file in a temp dir."""
    return tmp_path / "pad.duckdb"


@pytest.fixture
def shared_data():
    if not SHARED.exists():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED


def pad_cli(*args, cwd=None, env=None, check=False):
    """Run the real `pad` console script in a subprocess."""
    exe = Path(sys.executable).with_name("pad")
    full_env = dict(os.environ, **(env or {}))
    res = subprocess.run([str(exe), *map(str, args)], cwd=cwd, env=full_env, capture_output=True,
                         text=True, timeout=300)
    if check and res.returncode != 0:
        raise AssertionError(f"pad {args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def tiny_gpt2(path: Path, positions: int = 128) -> Path:
    """A 2-layer GPT-2 with a byte-level tokenizer (no merges): built and saved locally."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["x"], vocab_size=257, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    cfg = GPT2Config(vocab_size=len(tok), n_positions=positions, n_embd=96, n_layer=2, n_head=4,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    import torch

    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path
