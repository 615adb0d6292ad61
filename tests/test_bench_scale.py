"""bench/bench_scale.py runs the whole pipeline at a tiny size, on a real store."""

import json
import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_scale  # noqa: E402

pytestmark = pytest.mark.e2e


def test_bench_scale_runs_every_stage_beside_its_baseline(tmp_path, capsys):
    out = tmp_path / "scale.json"
    r = bench_scale.main(["--n", "240", "--data", "uniform", "--workdir", str(tmp_path / "work"), "--json", str(out)])
    assert json.loads(out.read_text())["programs"] == 240
    for key in ("import_rows_per_s", "read_json_rows_per_s", "execute_programs_per_s", "exec_loop_programs_per_s",
                "curate_programs_per_s", "ast_loop_programs_per_s", "export_rows_per_s", "datasets_write_rows_per_s",
                "review_first_load_s", "review_filter_label_s", "review_filter_text_s", "store_mb"):
        assert r[key] > 0, key
    assert sum(r["labels"].values()) == 240 and {"correct", "runtime_error", "wrong_answer"} <= set(r["labels"])
    # AST dedup matters: a renamed and a commented copy of each question's first program are dropped
    assert r["curated_rows"] <= r["curate_candidates"] * 0.6
    assert set(bench_scale.PIPELINE) - {"inject"} <= set(r["peak_rss_mb"]) and r["peak_rss_mb_pipeline"] > 0
    with duckdb.connect(str(tmp_path / "work" / "pad.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM programs WHERE program LIKE '%```%'").fetchall()[0][0] == 0
        assert con.execute("SELECT count(DISTINCT answer_text) > 1 FROM problems").fetchall()[0][0]
    assert "| import |" in capsys.readouterr().out


def test_bench_scale_on_realistic_data_runs_every_stage_from_its_files(tmp_path, capsys):
    r = bench_scale.main(["--n", "800", "--workdir", str(tmp_path / "work"), "--json", str(tmp_path / "s.json")])
    assert r["data"] == "realistic" and r["programs"] == 800 and len(r["files"]) == 6
    assert sum(f["programs"] for f in r["files"]) == 800
    # what the generator made each program do is what pad's sandbox finds
    assert {"correct", "wrong_answer", "runtime_error", "syntax_error"} <= set(r["labels"])
    assert 0.75 < r["labels"]["correct"] / 800 < 0.95
    for key in ("import_records_per_s", "read_json_records_per_s", "execute_programs_per_s",
                "exec_loop_programs_per_s", "inject_sources_per_s", "curate_programs_per_s", "refine_programs_per_s",
                "export_rows_per_s"):
        assert r[key] > 0, key
    assert r["inject_sources"] == 80 and r["inject_variants"] > 80 and r["inject_executed"] == r["inject_variants"]
    assert 0 < r["curated_rows"] < r["curate_candidates"]  # duplicates and K per problem
    assert set(bench_scale.PIPELINE) <= set(r["peak_rss_mb"])
    out = capsys.readouterr().out
    assert "| import (6 files) |" in out and "| inject-errors" in out


def test_a_realistic_run_stopped_in_execute_resumes_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    work, real_execute = tmp_path / "work", bench_scale.execute

    def stopped(store, **kw):  # a sitting that ends while the first programs are being labeled
        def stop(done, total):
            if done:
                raise KeyboardInterrupt
        return real_execute(store, **{**kw, "progress": stop})

    monkeypatch.setattr(bench_scale, "execute", stopped)
    with pytest.raises(KeyboardInterrupt):
        bench_scale.main(["--n", "800", "--workdir", str(work), "--json", str(tmp_path / "s.json")])
    state = json.loads((work / "bench-state.json").read_text())
    assert state["done"] == ["generate", "read_json (baseline)", "import"] and state["spent"]["execute"] > 0
    with duckdb.connect(str(work / "pad.duckdb"), read_only=True) as con:
        first = con.execute("SELECT count(*) FROM program_labels").fetchall()[0][0]
    assert 0 < first < 800  # stopped part way, with what it labeled committed

    monkeypatch.setattr(bench_scale, "execute", real_execute)
    r = bench_scale.main(["--n", "800", "--workdir", str(work), "--json", str(tmp_path / "s.json"), "--resume"])
    assert r["attempts"] == 2 and r["import_s"] == state["out"]["import_s"]  # import was not run again
    assert sum(r["labels"].values()) == 800 and r["execute_s"] > state["spent"]["execute"]
    assert r["inject_sources"] == 80 and r["inject_executed"] == r["inject_variants"] > 80
    assert set(bench_scale.PIPELINE) <= set(r["peak_tree_pss_mb"]) and r["peak_tree_pss_mb"]["execute"] > 0
    assert "2 attempt(s)" in capsys.readouterr().out


def test_bench_scale_on_a_directly_written_realistic_store_curates_exports_and_reviews(tmp_path, capsys):
    r = bench_scale.main(["--n", "800", "--data", "direct", "--workdir", str(tmp_path / "work"),
                          "--json", str(tmp_path / "s.json")])
    assert r["data"] == "direct" and r["programs"] == 800 + round(800 * 0.004)
    assert {"correct", "wrong_answer", "runtime_error"} <= set(r["labels"]) and r["labels"]["correct"] > 600
    for key in ("curate_programs_per_s", "refine_programs_per_s", "ast_loop_programs_per_s", "export_rows_per_s",
                "review_first_load_s"):
        assert r[key] > 0, key
    assert 0 < r["curated_rows"] < r["curate_candidates"]
    assert 0 < r["refine_rows"] <= r["refine_faulty"]  # one pair per faulty program at most
    assert "| curate (AST dedup) |" in capsys.readouterr().out


def test_realistic_generator_ids_are_unique_and_its_repeats_are_deliberate_and_counted(tmp_path):
    import realistic
    from pad_data.stages.ingest import import_programs
    from pad_data.store import Store

    # more variants asked for than there are correct programs: each parent is drawn once
    problems, programs, results = realistic.generate(2000, seed=0, injected=5000)
    ids = [p["program_id"] for p in programs]
    assert len(set(ids)) == len(ids) == len(results)
    teacher = [p for p in programs if p["origin"] == "teacher"]
    injected = [p for p in programs if p["origin"] == "injected"]
    correct = [p["program_id"] for p, r in zip(programs, results) if p["origin"] == "teacher" and r["label"] == "correct"]
    assert len(teacher) == 2000 and sorted(p["parent_program_id"] for p in injected) == sorted(correct)
    assert realistic.generate(2000, seed=0, injected=5000) == (problems, programs, results)  # seeded
    assert [p["program"] for p in realistic.generate(2000, seed=1, injected=0)[1]] != [p["program"] for p in teacher]

    # a teacher repeats itself (~35% of later samples, and some fresh samples come out the same):
    # each repeat is its own sample with its own id, and counted
    by_problem: dict[str, list[dict]] = {}
    for p in teacher:
        by_problem.setdefault(p["problem_id"], []).append(p)
    repeats = sum(realistic.repeats(rows) for rows in by_problem.values())
    assert repeats == len(teacher) - len({(p["problem_id"], p["teacher"], p["program"]) for p in teacher})
    assert 0.2 * len(teacher) < repeats < 0.4 * len(teacher)

    built = realistic.build_store(tmp_path / "s.duckdb", 2000, 0, injected=5000, reviews=0)
    assert (built["programs"], built["repeats"], built["injected"]) == (len(programs), repeats, len(injected))
    # pad's import takes every repeat as another sample of the record (nothing fails or is merged)
    files = realistic.write_files(tmp_path / "files", 2000)
    with Store(tmp_path / "imported.duckdb") as st:
        added = [import_programs(st, f["path"], f["dataset"], split=f["split"], teacher=f["teacher"],
                                 program_field="programs")["added"] for f in files]
        same = st.scalar("SELECT count(*) - count(DISTINCT (problem_id, teacher, program)) FROM programs")
    assert sum(added) == len(teacher) and same == repeats
