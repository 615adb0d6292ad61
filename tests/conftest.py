import contextlib
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PAD_SHARED_DATA") or ROOT.parent / "shared" / "data")  # real data, never in the repo


# One torch thread per process, here and in the CLIs the tests start (they inherit it): the
# suite runs two test files at once on two cores, and torch's thread pools spinning against
# each other make a tiny model's step slower than one thread does.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Compiled bytecode is cached, here and in the processes the tests start. With
# PYTHONDONTWRITEBYTECODE set (as on the CI machines) and a fresh virtualenv, every CLI, notebook
# and bench a test starts would compile torch and transformers from source again.
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


def pad_cli(*args, cwd: Path | None = None, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run `pad ARGS` in this process through typer's CliRunner on the CLI app: the commands' exit
    code, stdout and stderr as the console script gives them, without starting a Python and importing
    pad each time. `pad sql`/`pad stats` put to a running stage go through the console script's own
    entry: :func:`pad_process`."""
    from typer.testing import CliRunner

    from pad_data.cli import app

    argv = [str(a) for a in args]
    with contextlib.chdir(cwd) if cwd else contextlib.nullcontext():
        res = CliRunner().invoke(app, argv, env=env, prog_name="pad")
    stderr = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        stderr += "".join(traceback.format_exception(res.exception))  # as an uncaught error prints it
    return _checked(subprocess.CompletedProcess(["pad", *argv], res.exit_code, res.stdout, stderr), check)


def pad_process(*args, cwd: Path | None = None, env: dict | None = None,
                check: bool = False) -> subprocess.CompletedProcess:
    """Run the real `pad` console script in a subprocess: for the end-to-end tests of the entry point,
    signals, live reads and servers."""
    exe = Path(sys.executable).with_name("pad")
    res = subprocess.run([str(exe), *map(str, args)], cwd=cwd, env=dict(os.environ, **(env or {})),
                         capture_output=True, text=True, timeout=300)
    return _checked(res, check)


def _checked(res: subprocess.CompletedProcess, check: bool) -> subprocess.CompletedProcess:
    if check and res.returncode != 0:
        raise AssertionError(f"{res.args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
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
