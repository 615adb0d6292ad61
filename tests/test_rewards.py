"""pad_train.rewards: TRL-shaped execution rewards from pad's real sandbox, labels and store."""

import json
import os
import time
from types import SimpleNamespace

import pytest

from pad_data.stages.ingest import ingest
from pad_data.store import Store, problem_id
from pad_train.rewards import ExecutionReward, RewardScheme, completion_text

from conftest import pad_cli


def fenced(body: str) -> str:
    return f"Here is the program:\n```python\n{body}\n```\nIt returns the answer."


RIGHT = "def solution():\n    apples = 10\n    return apples - 3"
CASES = [  # (completion, gold, label)
    (fenced(RIGHT), 7, "correct"),
    (RIGHT, "7", "correct"),  # bare code, a gold given as text
    (fenced(RIGHT), "Ten apples, three eaten.\n#### 7", "correct"),  # GSM8K's answer column as it is
    (fenced(RIGHT), 8, "wrong_answer"),
    ("def solution(:\n    return 1", 1, "syntax_error"),
    ("def solution():\n    return 1 / 0", 1, "runtime_error"),
    ("def solution():\n    return 'many'", 7, "non_numeric"),
    ("def solution():\n    return 'Yes '", "yes", "correct"),  # a text gold (coin flip)
    ("def solution():\n    x = 1", 1, "no_answer"),
    ([{"role": "assistant", "content": fenced(RIGHT)}], 7.0, "correct"),  # chat completions
    ([{"role": "assistant", "content": [{"type": "text", "text": RIGHT}]}], 7, "correct"),
]


@pytest.fixture(scope="module")
def reward():
    with ExecutionReward(timeout=1.0) as r:
        yield r


def test_each_completion_is_extracted_run_and_labeled_by_pads_rules(reward):
    completions, golds, labels = zip(*CASES)
    rewards = reward(list(completions), prompts=["q"] * len(CASES), answer=list(golds))
    assert [label for label, _ in reward.last] == list(labels)
    assert rewards == [1.0 if label == "correct" else 0.0 for label in labels]  # the default: 1 correct, 0 otherwise
    assert reward.last_results[0].value == 7 and reward.labels["correct"] == 6
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "a"


def test_the_reward_per_label_is_configurable(reward):
    completions, golds, labels = zip(*CASES)
    scheme = RewardScheme(format_reward=0.25, error_penalty=0.5, labels={"non_numeric": -0.1})
    with ExecutionReward(scheme, timeout=1.0) as custom:
        got = dict(zip(labels, custom(list(completions), answer=list(golds))))
    assert got == {"correct": 1.25, "wrong_answer": 0.25, "syntax_error": -0.5, "runtime_error": -0.5,
                   "non_numeric": 0.15, "no_answer": -0.5}
    with pytest.raises(ValueError, match="no label 'corect' \\(did you mean 'correct'\\?\\)"):
        RewardScheme(labels={"corect": 1.0})
    with pytest.raises(ValueError, match="finite"):
        RewardScheme(correct=float("nan"))


def test_bad_columns_are_one_clear_error(reward):
    with pytest.raises(ValueError, match=r"no 'answer' column in the dataset \(columns: solution\); name it with"):
        reward([RIGHT], solution=["7"])
    with pytest.raises(ValueError, match=r"column 'answer', row 1: the gold answer must be a number or string"):
        reward([RIGHT, RIGHT], answer=[7, [7]])
    assert reward([RIGHT], answer=[None]) == [0.0] and reward.last[0][0] == "unverifiable"  # no gold: no reward
    with ExecutionReward(gold_column="gold", timeout=1.0) as named:
        assert named([RIGHT], gold=["7"]) == [1.0]


@pytest.mark.e2e
def test_hostile_completions_cannot_touch_the_trainer_or_stall_the_batch(tmp_path, monkeypatch):
    """At the OS layer (the sandbox's Python policy off): the trainer's environment, its files and
    its process are out of reach, a loop or a fork bomb costs its own timeout, not the batch's."""
    monkeypatch.setenv("PAD_TRAINER_SECRET", "hunter2")
    me = os.getpid()
    target = tmp_path / "written"
    hostile = {
        "environ": "import os\ndef solution():\n    return repr(dict(os.environ))",
        "trainer environ": f"def solution():\n    return open('/proc/{me}/environ').read()",
        "parent environ": "import os\ndef solution():\n    return open(f'/proc/{os.getppid()}/environ').read()",
        "write": f"def solution():\n    open({str(target)!r}, 'w').write('x')\n    return 42",
        "kill trainer": f"import os\ndef solution():\n    os.kill({me}, 9)\n    return 42",
        "kill group": "import os\ndef solution():\n    os.killpg(0, 9)\n    return 42",
        "loop": "def solution():\n    while True:\n        pass",
        "fork bomb": "import os\ndef solution():\n    while True:\n        os.fork()",
    }
    good = "def solution():\n    return 6 * 7"
    completions = list(hostile.values()) + [good] * (256 - len(hostile))
    with ExecutionReward(timeout=1.0, pool_options={"python_policy": False}) as r:
        t0 = time.monotonic()
        rewards = r(completions, answer=[42] * 256)
        elapsed = time.monotonic() - t0
        results = dict(zip(hostile, r.last_results))
        assert r.pool.isolation == "bwrap"
        again = r([good] * 8, answer=[42] * 8)  # the same warm pool goes on
    assert all("hunter2" not in str(res.value) for res in r.last_results + list(results.values()))
    assert "PAD_TRAINER_SECRET" not in str(results["environ"].value)
    assert results["trainer environ"].status == results["parent environ"].status == "runtime_error"
    assert not target.exists() and results["write"].status != "ok"
    assert results["kill trainer"].status != "ok" and results["kill group"].status != "ok"
    assert results["loop"].status == "timeout"
    assert results["fork bomb"].status in ("runtime_error", "forbidden", "timeout")
    assert rewards[len(hostile):] == [1.0] * (256 - len(hostile)) and sum(rewards[:len(hostile)]) == 0
    assert again == [1.0] * 8
    # the loop's 1 s of CPU plus 248 forked programs; generous for a busy machine
    assert elapsed < 10, elapsed


def _problems(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text("\n".join(json.dumps({"question": f"What is {n} + 1?", "answer": n + 1}) for n in range(4)))
    db = tmp_path / "pad.duckdb"
    with Store(db) as st:
        ingest(st, src, "toy", split="train")
    return db, [problem_id("toy", f"What is {n} + 1?") for n in range(4)]


def test_rollouts_are_written_to_the_store_in_the_background(tmp_path):
    db, pids = _problems(tmp_path)
    with ExecutionReward(store=db, model="tiny-policy", run_id="run1", timeout=1.0) as r:
        completions = [f"def solution():\n    return {n + 1}" for n in range(4)] + \
                      ["def solution():\n    return 0", "def solution(:"]
        problems = pids + pids[:2]
        r(completions, answer=[1, 2, 3, 4, 1, 2], problem_id=problems, trainer_state=SimpleNamespace(global_step=3))
        # committed while the reward is still in use: pad sql sees it as the policy learns
        deadline, seen = time.monotonic() + 30, ""
        while time.monotonic() < deadline:
            seen = pad_cli("--db", db, "sql", "SELECT count(*) AS n FROM programs WHERE origin = 'rollout'",
                           "--format", "csv").stdout
            if "6" in seen.split():
                break
            time.sleep(0.2)
        assert "6" in seen.split(), seen
        r([completions[0]], answer=[1], problem_id=[pids[0]], trainer_state=SimpleNamespace(global_step=4))
    res = pad_cli("--db", db, "sql", "SELECT p.train_step, p.reward, l.label, l.origin, l.teacher, l.value "
                  "FROM programs p JOIN labeled_programs l USING (program_id) WHERE p.train_run_id = 'run1' "
                  "ORDER BY p.sample_idx", "--format", "json", check=True)
    rows = json.loads(res.stdout)
    assert [(r["train_step"], r["reward"], r["label"]) for r in rows] == \
        [(3, 1.0, "correct")] * 4 + [(3, 0.0, "wrong_answer"), (3, 0.0, "syntax_error"), (4, 1.0, "correct")]
    assert {r["origin"] for r in rows} == {"rollout"} and {r["teacher"] for r in rows} == {"tiny-policy"}
    assert rows[0]["value"] == "1"


def test_rollouts_need_a_problem_id_column(tmp_path):
    db, _ = _problems(tmp_path)
    with ExecutionReward(store=db, timeout=1.0) as r:
        with pytest.raises(ValueError, match="needs a 'problem_id' column"):
            r([RIGHT], answer=[7])


@pytest.mark.e2e
def test_bench_reward_scores_the_same_completions_three_ways(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_reward

    r = bench_reward.main(["--n", "512", "--batch", "128", "--subprocess-n", "16", "--repeats", "1",
                           "--json", str(tmp_path / "reward.json")])
    assert json.loads((tmp_path / "reward.json").read_text())["n"] == 512
    assert 0.6 < r["accuracy_of_completions"] < 0.9  # a quarter scored against a wrong gold; methods agreed
    rates = r["rewards_per_s"]
    assert rates["pad"] > 5 * rates["subprocess_run"]  # ~90x on 2 cores; generous for a busy machine
    assert r["goals"]["hostile"] and r["hostile"]["hostile_labels"][-2] == "timeout"
    assert "rewards/s" in capsys.readouterr().out
