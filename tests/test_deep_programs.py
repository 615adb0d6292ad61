"""One correct but deeply nested program stops no stage: curate keeps it (keyed on its text,
ranked last), inject-errors skips it, and both count it."""

import json

from pad_data.stages.curate import TOO_DEEP, analyze
from pad_data.rules.extract import extract_program
from pad_data.stages.inject import inject_errors
from pad_data.store import Store
from pad_train.stepwise import undefined_names

from conftest import pad_cli

DEEP = "def solution():\n    return " + "+".join(["1"] * 600) + "\n"  # parses and runs; ast.unparse recurses too deep


def test_curate_and_inject_errors_finish_on_a_deep_correct_program_and_count_it(db, tmp_path):
    records = [{"question": "Add one six hundred times. What do you get?", "answer": "600", "program": DEEP}]
    records += [{"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
                 "answer": str(a + b), "program": f"def solution():\n    apples = {a}\n    bought = {b}\n"
                                                  f"    return apples + bought\n"} for a, b in ((3, 4), (10, 5))]
    src = tmp_path / "programs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    pad_cli("--db", db, "import-programs", src, "--dataset", "toy", "--split", "train", check=True)
    pad_cli("--db", db, "execute", check=True)
    with Store(db) as st:
        assert st.scalar("SELECT label FROM labeled_programs WHERE program = ?", [DEEP]) == "correct"

    curated = pad_cli("--db", db, "curate", "snap", "--test", "0", "--validation", "0")
    assert curated.returncode == 0, curated.stderr
    assert "3 programs over 3 problems" in curated.stdout
    assert "1 candidate too deeply nested to analyze (kept" in curated.stdout
    with Store(db) as st:
        assert st.scalar("SELECT count(*) FROM curated_examples WHERE name = 'snap' AND program = ?", [DEEP]) == 1
        assert json.loads(st.scalar("SELECT counts FROM curations WHERE name = 'snap'"))["too_deep"] == 1

    injected = pad_cli("--db", db, "inject-errors", "--per-program", "1", "--timeout", "5")
    assert injected.returncode == 0, injected.stderr
    assert "3 correct programs -> 2 variants" in injected.stdout
    assert "skipped 1 program too deeply nested to edit" in injected.stdout
    with Store(db) as st:  # the API says the same
        r = inject_errors(st, per_program=1, run=False)
        assert r["too_deep"] == 1 and r["added"] == 0


def test_every_ast_use_survives_programs_too_deep_even_to_parse():
    huge = "def solution():\n    return " + "+".join(["1"] * 5000) + "\n"  # ast.parse itself recurses too deep
    for program in (DEEP, huge):
        assert analyze(program, "ast")[0] == TOO_DEEP
        assert analyze(program, "exact")[2] == analyze(program + "\n\n", "exact")[2]  # keyed on its text
        assert undefined_names(program) == []
        assert extract_program(program).startswith("def solution():")
    assert analyze(DEEP, "none")[0] == 2  # counting statements needs no recursion
