import pytest

from pad_data.extract import extract_program
from pad_data.labels import LABELS, label_for, parse_number


@pytest.mark.parametrize("text,num", [
    ("42", 42.0), ("1,234", 1234.0), ("$12.50", 12.5), ("75%", 75.0), ("3/4", 0.75), ("-2.5e3", -2500.0),
    ("18.", 18.0), (" 7 ", 7.0), ("seven", None), ("", None), (True, None), (None, None), (float("nan"), None),
    ("1/0", None),
])
def test_parse_number(text, num):
    assert parse_number(text) == num


@pytest.mark.parametrize("status,vtype,value,gold,gold_text,label", [
    ("ok", "int", 18, 18.0, "18", "correct"),
    ("ok", "float", 18.0004, 18.0, "18", "correct"),
    ("ok", "float", 18.017, 18.0, "18", "correct"),  # within 1e-3 * 18
    ("ok", "float", 18.02, 18.0, "18", "wrong_answer"),
    ("ok", "float", 1000000.5, 1000000.0, "1000000", "correct"),  # relative tolerance
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
