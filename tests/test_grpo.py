"""pad-train grpo: RL with pad's sandbox as the reward, on a tiny model built here (CPU)."""

import json
import random
import time

import pytest

pytest.importorskip("trl")

from pad_data.stages.curate import CurateParams, curate  # noqa: E402
from pad_data.stages.execute import execute  # noqa: E402
from pad_data.stages.ingest import import_programs, ingest  # noqa: E402
from pad_data.store import Store  # noqa: E402

from conftest import tiny_gpt2  # noqa: E402

NOISE = 0.6  # the teacher's systematic slip: `return N + 1` for "What is N?"


def pad_train(*args):
    """`pad-train ARGS` in this process (typer's CliRunner): exit code and output."""
    from typer.testing import CliRunner

    from pad_train.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args], prog_name="pad-train")
    return res.exit_code, res.stdout + (res.stderr or "")


@pytest.fixture
def slipping_teacher(tmp_path):
    """'What is N?' problems: 72 with a teacher's programs, 60% of them off by one (`return N + 1`),
    all curated (correct and wrong_answer), and 18 held-out test problems."""
    numbers = list(range(10, 100))
    random.Random(0).shuffle(numbers)
    rng = random.Random(1)
    train, test = numbers[:72], numbers[72:]
    progs = tmp_path / "train.jsonl"
    progs.write_text("\n".join(json.dumps({"question": f"What is {n}?", "answer": n, "program":
                                           f"def solution():\n    return {n}{' + 1' if rng.random() < NOISE else ''}"})
                               for n in train))
    tests = tmp_path / "test.jsonl"
    tests.write_text("\n".join(json.dumps({"question": f"What is {n}?", "answer": n}) for n in test))
    db = tmp_path / "pad.duckdb"
    with Store(db) as st:
        import_programs(st, progs, "whatis", split="train")
        ingest(st, tests, "whatis", split="test")
        execute(st)
        curate(st, "noisy", CurateParams(labels=["correct", "wrong_answer"], validation_fraction=0.0,
                                         test_fraction=0.0))
    return db


def _accuracy(db, model) -> float:
    from pad_train.evaluate import EvalConfig, evaluate

    with Store(db) as st:
        return evaluate(st, str(model), "whatis", "test", EvalConfig(max_new_tokens=40))["accuracy"]


@pytest.mark.e2e
def test_grpo_with_execution_rewards_fixes_what_sft_distilled_and_stores_its_rollouts(slipping_teacher, tmp_path):
    """SFT on a teacher that slips (60% `return N + 1`) writes the slip on held-out problems; GRPO with
    pad's execution reward unlearns it. Measured: held-out accuracy 22% -> 100% (18 problems) in 30 steps."""
    db = slipping_teacher
    base, sft, out = tiny_gpt2(tmp_path / "base"), tmp_path / "sft", tmp_path / "grpo"
    code, said = pad_train("--db", db, "sft", "--split", "noisy", "--model", base, "--out", sft, "--epochs", "60",
                           "--lr", "3e-3", "--batch-size", "16")
    assert code == 0, said
    before = _accuracy(db, sft)
    t0 = time.monotonic()
    code, said = pad_train("--db", db, "grpo", "--split", "noisy", "--model", sft, "--out", out, "--max-steps", "30",
                           "--lr", "3e-4", "--batch-size", "16", "--num-generations", "4",
                           "--max-completion-length", "40", "--timeout", "1", "--save-steps", "15")
    seconds = time.monotonic() - t0
    assert code == 0, said
    assert "grpo: 30 steps on 72 problems" in said and "480 rollouts" in said, said
    after = _accuracy(db, out)
    assert before <= 0.5 and after >= before + 0.4, (before, after, seconds)
    assert {p.name for p in out.glob("checkpoint-*")} == {"checkpoint-15", "checkpoint-30"}
    with Store(db, read_only=True) as st:
        rollouts = st.df("SELECT p.train_run_id, p.train_step, p.reward, l.label, l.status, p.teacher "
                         "FROM programs p JOIN labeled_programs l USING (program_id) WHERE p.origin = 'rollout'")
    assert len(rollouts) == 480 and rollouts.train_run_id.nunique() == 1 and set(rollouts.teacher) == {str(sft)}
    assert sorted(rollouts.train_step.unique()) == list(range(30)) and rollouts.label.notna().all()
    assert ((rollouts.reward == 1.0) == (rollouts.label == "correct")).all()
    by_step = rollouts.groupby("train_step").reward.mean()
    assert by_step.iloc[-10:].mean() > by_step.iloc[:10].mean()  # the policy's rollouts get better as it learns


def test_grpo_options_and_resume_are_checked_before_anything_runs(slipping_teacher, tmp_path):
    model = tiny_gpt2(tmp_path / "base")
    code, said = pad_train("--db", slipping_teacher, "grpo", "--split", "noisy", "--model", model, "--out",
                           tmp_path / "o", "--resume")
    assert code == 1 and said.strip().endswith("(nothing to resume; run without --resume to start)"), said
    code, said = pad_train("--db", slipping_teacher, "grpo", "--split", "noisy", "--model", model, "--out",
                           tmp_path / "o", "--batch-size", "6", "--num-generations", "4")
    assert code == 1 and "--batch-size 6 must be a multiple of --num-generations 4" in said, said
    assert not (tmp_path / "o").exists()
