"""bench/bench_paper.py (PaD vs CoT vs answer-only) runs end to end in a very small version."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from pad_data.teachers.embedded import embedded_problems  # noqa: E402
from pad_data.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_bench_paper_writes_every_cell_from_a_real_pipeline(tmp_path):
    out, work = tmp_path / "r.json", tmp_path / "work"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_paper.py"), "--tasks", "letters",
                        "--train", "24", "--test", "4", "--steps", "3", "--width", "32", "--heads", "2",
                        "--vocab", "300", "--positions", "160", "--out", str(out), "--workdir", str(work)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    cells = {(row["task"], row["method"], row["split"]) for row in res["rows"]}
    assert cells == {("letters", m, s) for m in ("pad", "cot", "answer_only") for s in ("iid", "ood")}
    assert len(res["rows"]) == 6
    for row in res["rows"]:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["n"] == 4
    methods = res["methods"]["letters"]
    assert {m["steps"] for m in methods.values()} == {3}  # same steps for every method
    assert len({m["examples"] for m in methods.values()}) == 1  # ...on the same questions
    assert res["model"]["letters"]["parameters"] > 0 and "| letters | pad |" in r.stdout
    data = res["data"]["letters"]
    assert data["curated_train"] > 0 and set(data["teacher_labels"]) - {"correct"}  # faulty programs were filtered
    assert sum(methods["pad"]["eval"]["ood"]["labels"].values()) == 4  # every pad answer came from running a program
    with Store(work / "pad.duckdb", read_only=True) as st:
        decodes = st.df("SELECT json_extract_string(settings, '$.decode') d, split FROM eval_runs")
        assert sorted(decodes.d) == ["answer-only", "answer-only", "cot", "cot", "greedy", "greedy"]
        assert set(decodes.split) == {"test", "ood"}
        students = st.scalar("SELECT count(*) FROM labeled_programs WHERE origin = 'student'")
        assert students == 8  # the pad student's programs (4 iid + 4 ood), executed and labeled; no rationales
        # the test questions never reach training
        assert st.scalar("SELECT count(*) FROM curated_examples c JOIN problems p USING (problem_id) "
                         "WHERE p.split <> 'train'") == 0


def test_embedded_lengths_and_rationales():
    default = embedded_problems(0)
    same = embedded_problems(0, coin_people=(2, 4), letter_words=(2, 4))
    assert [p.question for p in default] == [p.question for p in same]
    coin = next(p for p in default if p.dataset == "pad-coin")  # the set `pad run` has always ingested
    assert coin.question == ("A coin is heads up. Quinn does not flip the coin. Uma does not flip the coin. "
                             "Is the coin still heads up?")
    long = embedded_problems(3, n_arith=0, n_coin=20, n_letters=20, coin_people=(5, 6), letter_words=(5, 6))
    for p in long:
        k = len(p.data["people"] if p.dataset == "pad-coin" else p.data["words"])
        assert 5 <= k <= 6
        assert p.rationale and (p.answer_text in p.rationale or p.dataset == "pad-coin")
    ends = "heads" if coin.answer_text == "yes" else "tails"
    assert coin.rationale.endswith(f"So the coin ends {ends} up.")
    assert all(p.rationale is None for p in default if p.dataset == "pad-arith")
    with pytest.raises(ValueError):
        embedded_problems(0, coin_people=(3, 2))


def test_text_answers_of_rationales():
    from pad_train.evaluate import cot_answer_text

    assert cot_answer_text('Concatenating them gives "nk".\nThe answer is nk.') == "nk"
    assert cot_answer_text("So the coin ends tails up.\nThe answer is No.") == "No"
    assert cot_answer_text('The answer is "ab"') == "ab"
    assert cot_answer_text("The answer is") is None and cot_answer_text("no answer here") is None
