"""`pad curate` says what each filter removed (labels, origins, review, dedup, max-per-problem) and
takes --teacher, checked against the store like --dataset."""
from pad_data.store import Store

from conftest import pad_cli


def test_curate_says_what_each_filter_removed_and_takes_teacher(db, tmp_path):
    pad_cli("--db", db, "run", "--samples", "4", check=True)
    res = pad_cli("--db", db, "curate", "all", check=True)
    kept = int(res.stdout.split(" programs over")[0].split(", ")[-1].replace(",", ""))
    line = res.stdout.splitlines()[1]
    assert line.lstrip().startswith("of ") and "each filter removed: --labels " in line, res.stdout
    counts = dict(part.rsplit(" ", 1) for part in line.split("removed: ")[1].split(", "))
    assert list(counts) == ["--labels", "--origins", "--review", "--dedup", "--max-per-problem"]
    total = int(line.split("of ")[1].split(" programs")[0].replace(",", ""))
    assert total - sum(int(n.replace(",", "")) for n in counts.values()) == kept
    with Store(db) as st:
        assert st.scalar("SELECT count(*) FROM labeled_programs") == total
        assert int(counts["--labels"].replace(",", "")) == st.scalar(
            "SELECT count(*) FROM labeled_programs WHERE label IS DISTINCT FROM 'correct'")
        teacher = st.scalar("SELECT any_value(teacher) FROM programs")
    same = pad_cli("--db", db, "curate", "by-teacher", "--teacher", teacher, check=True)
    assert "--teacher 0" in same.stdout and f"{kept:,} programs over" in same.stdout
    with Store(db) as st:
        params = st.df("SELECT name, params FROM curations ORDER BY name")
    assert '"teachers"' not in params.params[0] and f'"teachers": ["{teacher}"]' in params.params[1]
    bad = pad_cli("--db", db, "curate", "x", "--teacher", teacher[:-1])
    assert bad.returncode == 1 and f"error: --teacher: no teacher {teacher[:-1]!r} (did you mean {teacher!r}?)" \
        in bad.stderr
