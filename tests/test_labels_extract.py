import pytest

from pad_data.rules.extract import extract_program
import math

from pad_data.rules.answers import AnswerError, format_number, parse_answer, parse_number
from pad_data.rules.labels import ABS_TOL, LABELS, label_for, numbers_match


@pytest.mark.parametrize("text,num", [
    ("42", 42.0), ("1,234", 1234.0), ("$12.50", 12.5), ("75%", 75.0), ("3/4", 0.75), ("-2.5e3", -2500.0),
    ("18.", 18.0), (" 7 ", 7.0), ("seven", None), ("", None), (True, None), (None, None), (float("nan"), None),
    ("1/0", None), ("15 minutes", 15.0), ("\u22123 m", -3.0), ("2 1/2 cups", 2.5), ("18.0.", 18.0),
    # a word that changes the number is no unit; commas only in thousands groups; a sign after "$"
    ("1.2 million", None), ("$2.5k", None), ("5 dozen", None), ("3\u03c0", None), ("3\u00bd", None),
    ("2,3", None), ("1,23", None), ("1,234.5", 1234.5), ("5\u20ac", 5.0), ("$\u22125", -5.0),
])
def test_parse_number(text, num):
    assert parse_number(text) == num


def test_a_gold_is_read_as_a_value_is_after_its_gsm8k_mark():
    for text in ("15 minutes", "$12.50", "75%", "3/4", "1,234", "2 1/2", "\u22125 apples", "12 cm.", "seven"):
        assert parse_answer(text).number == parse_number(text) == parse_answer(f"r\n#### {text}").number, text
    assert parse_number("r\n#### 5") is None  # a value has no rationale
    for big in (10**400, float("inf"), float("nan")):  # no number: an error for a gold, None for a value
        assert parse_number(big) is None
        with pytest.raises(AnswerError, match="is not a finite number"):
            parse_answer(big)


@pytest.mark.parametrize("value,text", [
    (18, "18"), (18.0, "18"), (2.5, "2.5"), (-0.0, "0"), (-7.0, "-7"), (1e-07, "1e-07"), (0.1, "0.1"),
    (10**20, "100000000000000000000"), (2.0**53 - 1, "9007199254740991"), (2.0**53, "9007199254740992.0"),
    (1e20, "1e+20"),
])
def test_format_number(value, text):
    assert format_number(value) == text
    assert parse_number(text) == float(value)


@pytest.mark.parametrize("status,vtype,value,gold,gold_text,label", [
    ("ok", "int", 18, 18.0, "18", "correct"),
    ("ok", "float", 18.0004, 18.0, "18", "correct"),
    ("ok", "float", 18.017, 18.0, "18", "wrong_answer"),  # PAL's rule is absolute: |v - g| < 1e-3
    ("ok", "float", 18.02, 18.0, "18", "wrong_answer"),
    ("ok", "int", 1001, 1000.0, "1000", "wrong_answer"),  # a relative 1e-3 would call it correct
    ("ok", "int", 72070, 72000.0, "72000", "wrong_answer"),
    ("ok", "str", "72,070", 72000.0, "72000", "wrong_answer"),
    ("ok", "float", 1000000.5, 1000000.0, "1000000", "wrong_answer"),
    ("ok", "float", 1000000.0009, 1000000.0, "1000000", "correct"),
    ("ok", "float", 0.001, 0.0, "0", "wrong_answer"),
    ("ok", "float", 0.0009999, 0.0, "0", "wrong_answer"),  # below 1 the rule is relative
    ("ok", "float", 5.551115123125783e-17, 0.0, "0", "correct"),  # 0.1 + 0.2 - 0.3
    ("ok", "int", 0, 2.0107e-06, "2.0107e-06", "wrong_answer"),  # a tiny gold is not 0
    ("ok", "float", 2.01071e-06, 2.0107e-06, "2.0107e-06", "correct"),
    ("ok", "float", 1 / 3, 0.3333, "0.3333", "correct"),  # a gold the dataset rounded
    ("ok", "float", 1 / 3, 0.33, "0.33", "wrong_answer"),
    ("ok", "float", 3.0000000000000004e13, 3e13, "30000000000000", "correct"),  # noise at scale
    ("ok", "int", 123456789013, 123456789012.0, "123456789012", "wrong_answer"),
    ("ok", "str", "15 minutes", 15.0, "15 minutes", "correct"),  # value and gold: one parser
    ("ok", "str", "$1,500.00", 1500.0, "1500", "correct"),
    ("ok", "float", -17.9996, -18.0, "-18", "correct"),
    ("ok", "bool", True, 1.0, "1", "non_numeric"),
    ("ok", "str", "18", 18.0, "18", "correct"),
    ("ok", "str", "eighteen", 18.0, "18", "non_numeric"),
    ("ok", "float", None, 18.0, "18", "non_numeric"),  # nan
    ("ok", "list", None, 18.0, "18", "non_numeric"),
    ("ok", "str", " Yes ", None, "yes", "correct"),
    ("ok", "bool", False, None, "no", "correct"),
    ("ok", "str", "ab", None, "ba", "wrong_answer"),
    ("ok", "int", 5, None, None, "unverifiable"),
    ("runtime_error", None, None, 1.0, "1", "runtime_error"),
    ("timeout", None, None, None, None, "timeout"),
    ("no_answer", None, None, 1.0, "1", "no_answer"),
])
def test_label_for(status, vtype, value, gold, gold_text, label):
    assert label_for(status, vtype, value, gold, gold_text)[0] == label
    assert label in LABELS


def test_numbers_match_is_right_at_both_ends_of_the_scale():
    assert ABS_TOL == 1e-3
    # from 1 to 1e9: PAL's absolute rule
    assert numbers_match(18.0004, 18) and not numbers_match(18.017, 18)
    assert not numbers_match(1001, 1000.0) and not numbers_match(72070, 72000.0)
    assert numbers_match(999_999_999.0009, 999_999_999) and not numbers_match(999_999_999.002, 999_999_999)
    # below 1: relative (three significant digits), symmetric in value and gold
    assert not numbers_match(0.0, 2.0107e-06) and not numbers_match(2.0107e-06, 0.0)
    assert numbers_match(2.0107e-06 * (1 + 5e-4), 2.0107e-06) and not numbers_match(2.0107e-06 * 1.002, 2.0107e-06)
    assert numbers_match(0.0, 1e-10) and not numbers_match(0.0, 1e-8)
    # above 1e9: floating-point noise passes, an answer off by one below 1e12 does not
    big = 1e13
    assert numbers_match(math.nextafter(big, math.inf), big) and numbers_match(big * (1 + 5e-13), big)
    assert not numbers_match(big * (1 + 2e-12), big)
    assert not numbers_match(987654321001, 987654321000.0)
    assert numbers_match(2 ** 53 + 1, float(2 ** 53))
    assert label_for("ok", "int", 2 ** 53 + 1, float(2 ** 53), str(2 ** 53))[0] == "correct"


@pytest.mark.parametrize("text,expected", [
    ("def solution():\n    return 1", "def solution():\n    return 1\n"),
    ("Here you go:\n```python\ndef solution():\n    return 1\n```\nDone.", "def solution():\n    return 1\n"),
    ("```\nprint('x')\n```\n```python\ndef solution():\n    return 2\n```", "def solution():\n    return 2\n"),
    ("Sure.\ndef solution():\n    x = 1\n\n    return x\nThis returns 1.", "def solution():\n    x = 1\n\n    return x\n"),
    ("```python\nimport math\n\ndef helper():\n    return 2\n\ndef solution():\n    return helper()\n",
     "import math\n\ndef helper():\n    return 2\n\ndef solution():\n    return helper()\n"),
])
def test_extract_program(text, expected):
    assert extract_program(text) == expected


DICT_CONSTANT = '''PRICES = {
    "apple": 2,
    "pear": 3,
}


def solution():
    return PRICES["apple"] * 3 + PRICES["pear"]
'''
STRING_CONSTANT = '''import math

NOTES = """
Tom has 3 apples.
He buys 4 more.
"""


def solution():
    return math.floor(3 + 4)
'''
MAIN_BLOCK = '''def solution():
    return 12 // 4


if __name__ == "__main__":
    print(solution())
'''
POT_SCRIPT = '''import math
nums = [
    3,
    4,
]
total = math.fsum(nums)
ans = total * 2
'''


@pytest.mark.parametrize("program", [DICT_CONSTANT, STRING_CONSTANT, MAIN_BLOCK, POT_SCRIPT],
                         ids=["dict-constant", "string-constant", "main-block", "pot-script"])
def test_a_whole_valid_program_is_kept_whole(program):
    assert extract_program(program) == program
    # surrounding blank lines and a missing or doubled final newline are normalized, nothing else
    assert extract_program("\n  \n" + program.rstrip("\n")) == program
    assert extract_program(program + "\n\n") == program
    assert extract_program(program.replace("\n", "\r\n")).replace("\r\n", "\n") == program


@pytest.mark.parametrize("program", [DICT_CONSTANT, MAIN_BLOCK])
def test_prose_and_fences_around_a_whole_program_still_go(program):
    assert extract_program(f"Here is the program:\n```python\n{program}```\nIt prints the answer.") == program
    # without fences, prose still ends the code at the first non-parsing top-level line
    assert extract_program("Sure! Here it is.\n" + MAIN_BLOCK + "That's all.") == \
        "def solution():\n    return 12 // 4\n"


@pytest.mark.parametrize("path", ["pal/gsm.jsonl", "pal/svamp.jsonl", "pal/asdiv.jsonl", "pal/mawpsaddsub.jsonl",
                                  "pal/mawpsmultiarith.jsonl", "pal/mawpssingleeq.jsonl", "pal/mawpssingleop.jsonl",
                                  "pot/gsm8k.jsonl", "pot/svamp.jsonl", "pot/tabmwp.jsonl", "pot/multiarith_zs.jsonl"])
def test_the_rule_on_real_golds(shared_data, path):
    """Every numeric gold of the real PAL and PoT files matches itself whichever way a program
    returns it (int, float, the dataset's own text), and never 0 or a value 1% off."""
    import json

    field = "target" if path.startswith("pal/") else "answer"
    n = 0
    for line in (shared_data / path).read_text().splitlines():
        raw = json.loads(line).get(field)
        gold = parse_answer(raw)
        if gold.number is None:
            continue
        g = gold.number
        n += 1
        as_returned = [("float", g), ("str", str(raw))] + ([("int", int(g))] if g.is_integer() else [])
        for vtype, value in as_returned:
            assert label_for("ok", vtype, value, g, gold.text)[0] == "correct", (path, raw, vtype, value)
        if g != 0:
            assert label_for("ok", "float", g * 1.01, g, gold.text)[0] == "wrong_answer", (path, raw)
            assert label_for("ok", "int", 0, g, gold.text)[0] == "wrong_answer", (path, raw)
    assert n > 300


def test_pot_tabmwp_programs_returning_units_are_compared_as_numbers(shared_data):
    """PoT's TabMWP scripts set ``ans = '30 minutes'`` where the gold is '30 minutes': the value
    goes through the gold's parser, so the real programs that got it right are correct."""
    import json

    labels = []
    for line in (shared_data / "pot/tabmwp.jsonl").read_text().splitlines():
        rec = json.loads(line)
        value = rec.get("executed")
        if isinstance(value, str) and parse_number(value) is not None and not value.replace(".", "").isdigit():
            gold = parse_answer(rec["answer"])
            labels.append(label_for("ok", "str", value, gold.number, gold.text)[0])
    assert labels.count("correct") >= 3 and "non_numeric" not in labels


@pytest.mark.parametrize("vtype,vjson,vrepr,gold_text", [  # as the sandbox worker describes each value
    ("list", None, "[1, 2]", "[1, 2]"), ("float", None, "inf", "inf"), ("tuple", None, "(1, 2)", "(1, 2)"),
    ("dict", None, "{'a': 1}", "{'a': 1}"), ("list", None, "[]", "[]"), ("BooleanTrue", None, "True", "yes"),
    ("bool", True, "True", "yes"), ("ndarray", True, "True", "yes"), ("bool_", False, "False", "no"),
    ("int", 42, None, "42"), ("int", 1.2089258196146292e24, "<int with 81 bits>", "1.2089258196146292e24"),
    ("int", None, "<int with 2000 bits>", "7"), ("str", "15 minutes", None, "15 minutes"), ("float", 1.5, None, "1.5"),
    ("Symbol", None, "42", "42"),
])
def test_relabeling_a_stored_execution_gives_the_label_a_fresh_run_gives(vtype, vjson, vrepr, gold_text):
    """labels.relabel (after `--update`) reads executions back from the store, where a value that
    is not a string or a number is stored as its repr: it must label what the worker gave."""
    import pandas as pd

    from pad_data.rules.labels import stored_label
    from pad_data.stages.results import result_row
    from pad_data.sandbox.pool import ExecResult

    res = ExecResult("ok", value=vjson, value_type=vtype, value_repr=vrepr)
    gold = parse_answer(gold_text)
    first = result_row("p", res, None, "zzz", 1.0, 256, "x", pd.Timestamp(0))  # stored against another gold
    fresh = label_for("ok", vtype, vjson, gold.number, gold.text)[0]
    again = stored_label("ok", first["value_type"], first["value"], first["value_num"], gold.number, gold.text)[0]
    assert again == fresh
