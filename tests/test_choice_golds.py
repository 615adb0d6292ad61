"""Multiple-choice golds (AQuA, MathQA): options read from the record, the gold letter mapped to
its option's value, and a program correct when it returns that value or names the letter; the
bulk (SQL) and Python paths read them alike."""

import json

import pytest

from pad_data.rules.answers import AnswerError, Gold, choice_gold, choice_letter, looks_like_choice, parse_answer, parse_options
from pad_data.rules.labels import label_for, stored_label
from pad_data.stages import bulk
from pad_data.stages.execute import execute
from pad_data.stages.ingest import IngestError, import_programs, ingest
from pad_data.store import Store

# AQuA's records (question, options as a list, letter gold in `correct`) and MathQA's (one string of options)
AQUA = [
    {"question": "A car travels 43 km in 2 hours. How far in 1 hour?",
     "options": ["A)21", "B)21.5", "C)22", "D)22.5", "E)23"], "rationale": "43/2 = 21.5", "correct": "B"},
    {"question": "What is 3/4 of 8?", "options": ["A)2", "B)4", "C)6", "D)8", "E)None of these"], "correct": "C"},
    {"question": "Which costs Rs. 300?", "options": "a ) rs . 400 , b ) rs . 300 , c ) 1,200 , d ) 5/2 , e ) none",
     "correct": "(b)"},
    {"question": "How many cm?", "options": ["(A) 12 cm", "(B) 13 cm"], "correct": "a"},
]


def test_choice_letters_and_options():
    assert [choice_letter(v) for v in ("C", "c", "(c)", "c)", " ( C ) ", "C.", "ab", "", 3, None)] == \
        ["C", "C", "C", "C", "C", "C", None, None, None, None]
    assert parse_options(["A)21", "B)21.5", "C) 22"]) == ("21", "21.5", "22")
    assert parse_options(["(a) 5/2", "(b) 3"]) == ("5/2", "3")
    assert parse_options("a ) 1,200 , b ) rs . 300 , c ) 22") == ("1,200", "rs . 300", "22")
    assert parse_options({"A": 21, "B": "21.5"}) == ("21", "21.5")
    assert parse_options(["Hunter", "Erica"]) == ("Hunter", "Erica")  # lettered by position
    assert parse_options(None) is None and parse_options([]) is None
    for bad in (["A)21", "C)22"], ["A)21", "22"], "21 or 22", 5, ["A)", "B)2"]):
        with pytest.raises(AnswerError):
            parse_options(bad)


def test_choice_gold_is_the_options_value():
    options = parse_options(["A)21", "B)21.5", "C)22 cm", "D)Rs. 200"])
    assert choice_gold(parse_answer("(b)"), options) == Gold(21.5, "21.5", None, "B", options)
    assert choice_gold(parse_answer("c"), options) == Gold(22.0, "22 cm", None, "C", options)
    assert choice_gold(parse_answer("D"), options) == Gold(None, "Rs. 200", None, "D", options)
    assert choice_gold(parse_answer("21.5"), options) == Gold(21.5, "21.5", None, None, options)  # not a letter
    assert choice_gold(parse_answer("A"), ("A", "B")) == Gold(None, "A", None, None, ("A", "B"))  # an option's text
    assert choice_gold(parse_answer("C"), None) == parse_answer("C")
    with pytest.raises(AnswerError, match="only 4 options"):
        choice_gold(parse_answer("E"), options)
    assert looks_like_choice("(e)") and not looks_like_choice("F") and not looks_like_choice("yes")


def test_label_rule_for_choice_golds():
    # the value, by numbers_match; the letter in any case, with or without parentheses
    for value, vtype, label in [(21.5, "float", "correct"), (21.5004, "float", "correct"), ("21.5", "str", "correct"),
                                ("B", "str", "correct"), ("(b)", "str", "correct"), ("b)", "str", "correct"),
                                ("C", "str", "wrong_answer"), (22, "int", "wrong_answer"),
                                ("no idea", "str", "non_numeric"), (True, "bool", "non_numeric")]:
        assert label_for("ok", vtype, value, 21.5, "21.5", "B")[0] == label, value
    assert label_for("ok", "str", "Rs. 200", None, "Rs. 200", "D")[0] == "correct"
    assert label_for("ok", "str", "d", None, "Rs. 200", "D")[0] == "correct"
    assert label_for("ok", "int", 200, None, "Rs. 200", "D")[0] == "wrong_answer"
    # without a choice, a letter is what it always was
    assert label_for("ok", "str", "B", 21.5, "21.5")[0] == "non_numeric"
    assert label_for("ok", "str", "b", None, "B")[0] == "correct"
    assert stored_label("ok", "str", "(b)", None, 21.5, "21.5", "B")[0] == "correct"
    assert label_for("ok", "str", "B", 21.5, "21.5", float("nan"))[0] == "non_numeric"  # a NULL from a frame


def _write(tmp_path, name, records):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _problems(st):
    return st.con.execute("SELECT question, answer, answer_text, choice, options FROM problems "
                          "ORDER BY question").fetchall()


@pytest.fixture(params=[True, False], ids=["sql", "python"])
def use_sql(request, monkeypatch):
    monkeypatch.setattr(bulk, "USE_SQL", request.param)
    return request.param


def test_ingest_aqua_records(tmp_path, use_sql):
    src = _write(tmp_path, "aqua_train.jsonl", AQUA + [{"question": "Plain", "correct": "12"}])
    with Store(tmp_path / "s.duckdb") as st:
        r = ingest(st, src, "aqua", answer_field="correct")
        assert r["added"] == 5 and r["warning"] is None
        assert _problems(st) == [
            ("A car travels 43 km in 2 hours. How far in 1 hour?", 21.5, "21.5", "B", ["21", "21.5", "22", "22.5", "23"]),
            ("How many cm?", 12.0, "12 cm", "A", ["12 cm", "13 cm"]),
            ("Plain", 12.0, "12", None, None),
            ("What is 3/4 of 8?", 6.0, "6", "C", ["2", "4", "6", "8", "None of these"]),
            ("Which costs Rs. 300?", None, "rs . 300", "B", ["rs . 400", "rs . 300", "1,200", "5/2", "none"])]


def test_options_field_named_and_errors(tmp_path, use_sql):
    recs = [{"question": "Q1", "choices": ["A)1", "B)2"], "answer": "B"}, {"question": "Q2", "answer": "3"}]
    with Store(tmp_path / "s.duckdb") as st:
        ingest(st, _write(tmp_path, "a.jsonl", recs), "d", options_field="choices")
        assert _problems(st)[0] == ("Q1", 2.0, "2", "B", ["1", "2"])
        with pytest.raises(IngestError, match=r"no record has field 'choice' \(--options-field\)"):
            ingest(st, _write(tmp_path, "b.jsonl", [{"question": "Q9", "answer": "3"}]), "d", options_field="choice")
        with pytest.raises(IngestError, match=r"c\.jsonl:1: field 'answer' is choice 'E' but there are only 2 options"):
            ingest(st, _write(tmp_path, "c.jsonl", [{"question": "Q8", "options": ["A)1", "B)2"], "answer": "E"}]), "d")
        with pytest.raises(IngestError, match=r"d\.jsonl:1: field 'options' option 2 must start with the letter B"):
            ingest(st, _write(tmp_path, "d.jsonl", [{"question": "Q7", "options": ["A)1", "C)2"], "answer": "A"}]), "d")
        with pytest.raises(IngestError, match="--options-field is empty"):
            ingest(st, _write(tmp_path, "e.jsonl", recs), "d", options_field=" ")
        # an `options` field that is not options matters only to a letter gold
        ingest(st, _write(tmp_path, "f.jsonl", [{"question": "Q6", "options": {"verbose": True}, "answer": "4"}]), "d")
        assert ("Q6", 4.0, "4", None, None) in _problems(st)


def test_letter_golds_without_options_warn(tmp_path, use_sql):
    recs = [{"question": f"Q{i}", "correct": letter} for i, letter in enumerate(["(a)", "C", "b", "yes"])]
    with Store(tmp_path / "s.duckdb") as st:
        r = ingest(st, _write(tmp_path, "aqua.jsonl", recs), "aqua", answer_field="correct")
        assert r["warning"].count("\n") == 0 and "3 gold answers ('(a)', 'C', 'b') look like choice letters" \
            in r["warning"] and "--options-field" in r["warning"]
        r = ingest(st, _write(tmp_path, "coin.jsonl", [{"question": "Q", "answer": "yes"}]), "coin")
        assert r["warning"] is None


def test_import_and_execute_labels_choice_golds(tmp_path, use_sql):
    programs = {"A car travels 43 km in 2 hours. How far in 1 hour?":
                ["def solution():\n    return 43 / 2\n", "def solution():\n    return 'B'\n",
                 "def solution():\n    return '(b)'\n", "def solution():\n    return 'C'\n",
                 "def solution():\n    return 22\n"],
                "Which costs Rs. 300?": ["def solution():\n    return 'b'\n", "def solution():\n    return 300\n",
                                         "def solution():\n    return 'rs . 300'\n"]}
    recs = [{**r, "program": programs[r["question"]]} for r in AQUA if r["question"] in programs]
    with Store(tmp_path / "s.duckdb") as st:
        r = import_programs(st, _write(tmp_path, "pal_aqua.jsonl", recs), "aqua", answer_field="correct")
        assert r["read"] == 8 and r["warning"] is None
        execute(st, isolation_level="process")
        labels = st.con.execute("SELECT pr.choice, e.value, e.label FROM executions e JOIN programs p USING (program_id) "
                                "JOIN problems pr USING (problem_id) ORDER BY p.program").fetchall()
        assert sorted(labels) == sorted([
            ("B", "21.5", "correct"), ("B", "B", "correct"), ("B", "(b)", "correct"), ("B", "C", "wrong_answer"),
            ("B", "22", "wrong_answer"), ("B", "b", "correct"), ("B", "300", "wrong_answer"),
            ("B", "rs . 300", "correct")])
        # the gold as a letter (no options) labels them against the text 'B'; --update maps it back
        plain = [{k: v for k, v in rec.items() if k != "options"} for rec in recs]
        r = import_programs(st, _write(tmp_path, "plain.jsonl", plain), "aqua", answer_field="correct", update=True)
        assert r["updated"] == 2 and "choice letter" in r["warning"]
        assert st.scalar("SELECT count(*) FILTER (WHERE label = 'correct') FROM program_labels") == 1  # "B"
        r = import_programs(st, _write(tmp_path, "again.jsonl", recs), "aqua", answer_field="correct", update=True)
        assert r["updated"] == 2 and r["relabeled"] > 0
        assert st.scalar("SELECT count(*) FILTER (WHERE label = 'correct') FROM program_labels") == 5


def test_bulk_and_python_paths_agree(tmp_path, monkeypatch):
    recs = AQUA + [{"question": "Q no options", "correct": "D"}, {"question": "Q num", "correct": "1,234"},
                   {"question": "Q null", "options": None, "correct": "7"}]
    src = _write(tmp_path, "mix.jsonl", recs)
    out = {}
    for use in (True, False):
        monkeypatch.setattr(bulk, "USE_SQL", use)
        with Store(tmp_path / f"{use}.duckdb") as st:
            r = ingest(st, src, "mix", answer_field="correct")
            out[use] = (r["warning"], _problems(st))
    assert out[True] == out[False]
