"""Error injection -> refinement pairs -> a student that fixes its own programs.

Everything is real: programs run in the sandbox, models are tiny GPT-2s built and trained here.
"""

import ast
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from pad_data.stages.execute import execute  # noqa: E402
from pad_data.stages.ingest import import_programs  # noqa: E402
from pad_data.stages.inject import KINDS, inject, inject_errors, variants  # noqa: E402
from pad_data.store import Store  # noqa: E402

from conftest import pad_cli, tiny_gpt2  # noqa: E402

PAD_TRAIN = str(Path(sys.executable).with_name("pad-train"))
ARITH = '''def solution():
    """Tom has 12 apples and buys 3 bags of 4 apples. He eats 2. How many are left?"""
    apples = 12
    bags = 3
    per_bag = 4
    bought = bags * per_bag
    total = apples + bought
    left = total - 2
    return left
'''
QUESTION = "Tom has 12 apples and buys 3 bags of 4 apples. He eats 2. How many are left?"


def _run(source: str):
    from pad_data.sandbox.pool import execute_programs

    return execute_programs([source])[0]


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_injection_kind_edits_the_tree_as_described(kind):
    rng = random.Random(0)
    out = inject(ARITH, kind, rng, QUESTION)
    assert out is not None and out != ast.unparse(ast.parse(ARITH))
    res = _run(out)
    if kind == "syntax_slip":
        assert res.status == "syntax_error"
        return
    tree = ast.parse(out)  # every other kind is a valid program, written back by ast.unparse
    assert out == ast.unparse(tree)
    body = [ast.unparse(s) for s in tree.body[0].body[1:]]
    original = [ast.unparse(s) for s in ast.parse(ARITH).body[0].body[1:]]
    if kind == "step_dropped":
        assert len(body) == len(original) - 1 and all(line in original for line in body)
    elif kind == "steps_swapped":
        assert sorted(body) == sorted(original) and body != original
        assert res.status == "runtime_error" and res.error_type == "UnboundLocalError"
    elif kind == "undefined_name":
        assert res.error_type == "NameError"
    elif kind == "wrong_return":
        assert body[:-1] == original[:-1] and body[-1] != original[-1] and body[-1].startswith("return ")
    elif kind in ("operator", "constant_changed", "constant_dropped", "wrong_variable"):
        assert len(body) == len(original) and sum(a != b for a, b in zip(body, original)) == 1
        assert res.status == "ok" and res.value != 22  # the correct answer is 12 + 3 * 4 - 2
    if kind == "constant_changed":  # the number changed is one from the question
        changed = [a for a, b in zip(original, body) if a != b][0]
        assert changed.split(" = ")[-1].split()[-1] in ("12", "3", "4", "2")


def test_injection_is_deterministic_under_a_seed_and_skips_kinds_that_do_not_apply():
    a = variants(ARITH, list(KINDS), 5, "0:p1", QUESTION)
    assert a == variants(ARITH, list(KINDS), 5, "0:p1", QUESTION) and len(a) == 5
    assert len({k for k, _ in a}) == 5  # K variants take K different kinds when there are enough
    assert a != variants(ARITH, list(KINDS), 5, "1:p1", QUESTION)
    trivial = "def solution():\n    return 7"
    assert inject(trivial, "steps_swapped", random.Random(0)) is None
    assert inject(trivial, "wrong_return", random.Random(0)) is None
    assert {k for k, _ in variants(trivial, list(KINDS), 9, "0:t")} <= {"constant_changed", "syntax_slip"}


def test_inject_errors_stores_parents_kinds_and_labels_and_reruns_add_nothing(tmp_path):
    db = tmp_path / "pad.duckdb"
    pad_cli("--db", db, "run", check=True)
    res = pad_cli("--db", db, "inject-errors", "--per-program", "3", "--dataset", "pad-arith", check=True)
    assert "variants" in res.stdout and "silent" in res.stdout
    with Store(db, read_only=True) as st:
        n_src = st.scalar("SELECT count(*) FROM labeled_programs WHERE dataset = 'pad-arith' AND label = 'correct' "
                          "AND origin <> 'injected'")
        inj = st.df("SELECT i.*, p.label AS parent_label, p.problem_id AS parent_problem FROM injection_outcomes i "
                    "JOIN labeled_programs p ON p.program_id = i.parent_program_id")
        assert len(inj) == 3 * n_src  # arithmetic programs have at least 3 applicable kinds
        assert set(inj.injection_kind) == set(KINDS)
        assert (inj.parent_label == "correct").all() and (inj.problem_id == inj.parent_problem).all()
        assert inj.outcome.notna().all()  # all executed and labeled
        by = inj.groupby("injection_kind").outcome.agg(lambda s: set(s))
        assert by["syntax_slip"] == {"loud"} and by["undefined_name"] == {"loud"}
        assert "silent" in by["operator"] and "silent" in by["constant_changed"]
        # unchanged answers are kept and labeled correct, never dropped
        unchanged = st.scalar("SELECT count(*) FROM injection_outcomes WHERE outcome = 'unchanged'")
        assert unchanged == st.scalar("SELECT count(*) FROM labeled_programs WHERE origin = 'injected' "
                                      "AND label = 'correct'") > 0
        total = st.scalar("SELECT count(*) FROM programs")
    again = pad_cli("--db", db, "inject-errors", "--per-program", "3", "--dataset", "pad-arith", check=True)
    assert ", 0 new" in again.stdout and "executed 0" in again.stdout
    with Store(db, read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM programs") == total
    bad = pad_cli("--db", db, "inject-errors", "--kinds", "operator,typo")
    assert bad.returncode == 1 and "unknown injection kind 'typo'" in bad.stderr


def test_inject_errors_limit_takes_the_first_sources_by_id_and_a_tight_budget_changes_nothing(tmp_path):
    db = tmp_path / "pad.duckdb"
    pad_cli("--db", db, "run", "--samples", "1", check=True)
    tight = tmp_path / "tight.duckdb"
    tight.write_bytes(db.read_bytes())
    made = []
    for path, memory in ((db, None), (tight, "256MiB")):
        with Store(path, memory=memory) as st:
            r = inject_errors(st, per_program=2, limit=7, run=False)
            assert r["sources"] == 7 and r["added"] == r["variants"] == sum(r["by_kind"].values()) > 7
            assert r["executed"] == 0 and st.scalar("SELECT count(*) FROM labeled_programs WHERE origin = 'injected' "
                                                    "AND label IS NOT NULL") == 0
            made.append(st.df("SELECT program_id, program, parent_program_id, injection_kind, sample_idx FROM programs "
                              "WHERE origin = 'injected' ORDER BY program_id"))
            first = st.df("SELECT program_id FROM labeled_programs WHERE label = 'correct' AND origin <> 'injected' "
                          "ORDER BY program_id LIMIT 7").program_id.tolist()
            assert sorted(set(made[-1].parent_program_id)) == first
    assert made[0].equals(made[1])


@pytest.mark.e2e
def test_refine_pairs_carry_feedback_and_export(tmp_path):
    db = tmp_path / "pad.duckdb"
    pad_cli("--db", db, "run", check=True)
    pad_cli("--db", db, "inject-errors", "--per-program", "2", check=True)
    res = pad_cli("--db", db, "curate", "fix", "--task", "refine", check=True)
    assert "refinement pairs" in res.stdout
    with Store(db, read_only=True) as st:
        rows = st.df("SELECT r.*, f.error_type, f.error_line, f.status, f.value, t.label AS target_label "
                     "FROM refine_examples r JOIN labeled_programs f ON f.program_id = r.faulty_program_id "
                     "JOIN labeled_programs t ON t.program_id = r.program_id")
        assert len(rows) > 0 and (rows.target_label == "correct").all() and "correct" not in set(rows.label)
        assert "ok" in set(rows.status) and "NameError" in set(rows.error_type)  # both feedback forms are checked
        for r in rows.itertuples():
            if r.status == "ok":
                assert r.feedback == f"returned {r.value}"
            elif r.error_type == "NameError":
                assert r.feedback.startswith("NameError: name ") and r.feedback.endswith(f"(line {r.error_line})")
        # a problem's pairs are in one split, and the same split as in a program snapshot with the same seed
        assert rows.groupby("problem_id").split.nunique().max() == 1
    pad_cli("--db", db, "curate", "prog", check=True)
    with Store(db, read_only=True) as st:
        mismatched = st.scalar("SELECT count(*) FROM refine_examples r JOIN curated_examples c USING (problem_id) "
                               "WHERE c.name = 'prog' AND r.split <> c.split")
        assert mismatched == 0
    pad_cli("--db", db, "export", "fix", "--out", tmp_path / "hf", check=True)
    import datasets

    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert {"faulty_program", "feedback", "program", "injection_kind"} <= set(ds["train"].column_names)
    assert "Self-refinement pairs" in (tmp_path / "hf" / "README.md").read_text()
    bad = subprocess.run([PAD_TRAIN, "--db", str(db), "sft", "--split", "fix", "--model", "x", "--out",
                          str(tmp_path / "o")], capture_output=True, text=True)
    assert bad.returncode == 1 and "--task refine" in bad.stderr


# ---------------------------------------------------------------- self-refinement, end to end
@pytest.fixture(scope="module")
def refiner(tmp_path_factory):
    """`pad inject-errors` + `pad curate --task refine` + `pad-train sft --task refine --mix` via the CLIs.

    The student learns two things: to fix a faulty program from its feedback (the refinement
    pairs) and, from the --mix data, to write a *buggy* first program (a snapshot of injected
    NameError programs): a constructed case where every first attempt fails and only
    refinement can get it right.
    """
    tmp = tmp_path_factory.mktemp("refine")
    db = tmp / "pad.duckdb"
    numbers = list(range(10, 100))
    random.Random(0).shuffle(numbers)
    for split, ns in (("train", numbers[:72]), ("test", numbers[72:])):
        (tmp / f"{split}.jsonl").write_text("\n".join(json.dumps(
            {"question": f"What is {n}?", "answer": n, "program": f"def solution():\n    n = {n}\n    return n"})
            for n in ns))
    with Store(db) as st:
        import_programs(st, tmp / "train.jsonl", "whatis", split="train")
        import_programs(st, tmp / "test.jsonl", "whatis", split="test")
        execute(st)
    pad_cli("--db", db, "inject-errors", "--per-program", "4", check=True)
    pad_cli("--db", db, "curate", "fix", "--task", "refine", "--validation", "0", "--test", "0", check=True)
    pad_cli("--db", db, "curate", "buggy", "--labels", "runtime_error", "--origins", "injected",
            "--validation", "0", "--test", "0", check=True)
    base = tiny_gpt2(tmp / "base", positions=256)
    r = subprocess.run([PAD_TRAIN, "--db", str(db), "sft", "--split", "fix", "--task", "refine", "--mix", "1",
                        "--mix-split", "buggy", "--model", str(base), "--out", str(tmp / "student"), "--epochs", "50",
                        "--lr", "3e-3", "--batch-size", "16", "--max-length", "256"],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    return db, tmp / "student"


@pytest.mark.e2e
@pytest.mark.timeout(1800)  # the first one also trains the shared student (module fixture)
def test_a_student_trained_on_refinement_pairs_fixes_held_out_faulty_programs(refiner):
    from pad_data.rules.extract import extract_program
    from pad_train.data import load_refine_examples
    from pad_train.evaluate import EvalConfig, generate_texts
    from pad_train.sft import load_model

    db, student = refiner
    with Store(db, read_only=True) as st:
        held_out = load_refine_examples("fix", "test", st)  # problems the student never saw
        kinds = set(st.df("SELECT injection_kind FROM refine_examples WHERE split = 'test'").injection_kind)
    assert len(held_out) == 18 * 4 and {"undefined_name", "step_dropped", "syntax_slip"} <= kinds
    model, tok, seq2seq = load_model(str(student))
    outs = generate_texts(model.eval(), tok, seq2seq, [e.prompt for e in held_out], EvalConfig(max_new_tokens=40))
    fixed = sum(extract_program(o[0]).strip() == e.target.strip() for o, e in zip(outs, held_out))
    assert fixed >= 0.8 * len(held_out), fixed


@pytest.mark.e2e
@pytest.mark.timeout(1800)  # the first one also trains the shared student (module fixture)
def test_eval_refine_rounds_and_stepwise_end_to_end(refiner):
    db, student = refiner
    r = subprocess.run([PAD_TRAIN, "--db", str(db), "eval", "--model", str(student), "--dataset", "whatis",
                        "--split", "test", "--max-new-tokens", "40", "--refine-rounds", "2", "--decode", "stepwise",
                        "--beams", "2", "--candidates", "3"], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    assert "after each refinement round" in r.stdout
    with Store(db, read_only=True) as st:
        run = st.df("SELECT * FROM eval_runs").iloc[0]
        by_round = json.loads(run.accuracy_by_round)
        assert len(by_round) == 3 and by_round[0] <= 0.2 and by_round[-1] >= 0.8, by_round
        assert json.loads(run.settings)["decode"] == "stepwise(B=2,C=3)"
        progs = st.df("SELECT p.program_id, p.parent_program_id, p.refine_round, p.sample_idx, p.problem_id, "
                      "lp.label, lp.status FROM programs p JOIN labeled_programs lp USING (program_id) "
                      "WHERE p.eval_run_id = ?", [run.run_id])
        assert set(progs.refine_round) <= {0, 1, 2} and (progs.refine_round == 0).sum() == 18
        first = progs[progs.refine_round == 0].set_index("program_id")
        later = progs[progs.refine_round > 0]
        assert len(later) > 0 and later.parent_program_id.notna().all()
        for row in later.itertuples():  # each fix points at the failing program of the round before
            parent = progs.set_index("program_id").loc[row.parent_program_id]
            assert parent.refine_round == row.refine_round - 1 and parent.problem_id == row.problem_id
            assert parent.status != "ok" or parent.label == "non_numeric"
        assert (first.status != "ok").sum() >= 0.8 * 18  # the constructed student's first attempts fail
    rep = subprocess.run([PAD_TRAIN, "--db", str(db), "report"], capture_output=True, text=True)
    assert rep.returncode == 0 and "stepwise(B=2,C=3)" in rep.stdout and "->" in rep.stdout
