"""Real LLM programs run as written: Program-of-Thoughts' Codex programs (``../shared/data/pot``),
imported and executed through the real CLI, reproduce the values PoT recorded when it ran them."""

from __future__ import annotations

import json
import math

import duckdb
import pytest

from conftest import pad_cli

FILES = {
    # zero-shot: `import numpy as np`, def solver(), ans = solver()
    "multiarith_zs": ["--program-field", "generated", "--answer-field", "answer"],
    # few-shot scripts that set `ans`, programs as one-element lists; line 1 is PoT's prompt
    "gsm8k": ["--program-field", "generated", "--answer-field", "answer", "--skip-invalid"],
    "svamp": ["--question-field", "passage,question", "--program-field", "generated", "--answer-field", "answer",
              "--skip-invalid"],  # 3 demonstrations among the records
    "tabmwp": ["--question-field", "table,question", "--program-field", "generated", "--answer-field", "answer"],
}


def _recorded(path) -> dict[str, list]:
    """program text -> values PoT recorded for it."""
    out: dict[str, list] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "generated" not in rec:
            continue
        gen = rec["generated"] if isinstance(rec["generated"], list) else [rec["generated"]]
        for g in gen:
            out.setdefault(g.strip(), []).append(rec["executed"])
    return out


def _same(value_num, value, recorded) -> bool:
    if recorded is None:
        return value is None
    if isinstance(recorded, (int, float)):
        # PoT stored abs() of a negative result (its evaluation takes the absolute value)
        return value_num is not None and (abs(value_num - recorded) < 1e-3 or abs(abs(value_num) - recorded) < 1e-3)
    return str(value).strip() == str(recorded).strip()


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(FILES))
def test_pot_programs_reproduce_their_recorded_values(shared_data, tmp_path, name):
    src = shared_data / "pot" / f"{name}.jsonl"
    db = tmp_path / "pad.duckdb"
    pad_cli("--db", db, "import-programs", src, "--dataset", name, *FILES[name], check=True)
    pad_cli("--db", db, "execute", "--timeout", "5", check=True)
    recorded = _recorded(src)
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT p.program, e.label, e.value_num, e.value, e.status FROM programs p "
                       "JOIN executions e USING (program_id)").fetchall()
    con.close()
    n_programs = sum(len(v) for v in recorded.values())
    assert len(rows) >= 0.99 * n_programs
    assert not [r for r in rows if r[4] == "forbidden"]
    ok = sum(any(_same(num, val, want) for want in recorded.get(prog.strip(), [math.nan]))
             for prog, _, num, val, _ in rows)
    assert ok >= 0.99 * len(rows), f"{name}: reproduced {ok} of {len(rows)}"
