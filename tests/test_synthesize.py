import json

import pytest

from pad_data.stages.check import coverage, ngrams, normalize_text
from pad_data.stages.curate import CurateParams, curate
from pad_data.stages.execute import execute
from pad_data.stages.generate import generate, make_teacher
from pad_data.stages.ingest import ingest
from pad_data.rules.labels import numbers_match
from pad_data.store import Store
from pad_data.stages.synthesize import parse_problem, synthesize
from pad_data.stages.vote import vote

from conftest import pad_cli
from openai_server import FakeTeacherServer


def _teacher(srv, **kw):
    return make_teacher("openai", "fake-teacher", base_url=srv.base_url, backoff_base=0.01, **kw)


def _close(norm: str, others: list[str]) -> float:
    """How much of ``norm`` the 8-grams of ``others`` cover, all together (pad check's rule)."""
    return coverage(norm, {g for o in others for g in ngrams(o)}, set(others))


def _closest(norm: str, others: list[str]) -> float:
    """How much of ``norm`` the 8-grams of a single one of ``others`` cover, at most."""
    return max((_close(norm, [o]) for o in others), default=0.0)


def test_parse_problem():
    assert parse_problem("New problem: Ann has 3 cats and 2 dogs. How many pets?") == \
        "Ann has 3 cats and 2 dogs. How many pets?"
    assert parse_problem("Sure!\n\nNew problem:\n\"Ann has 3 cats and 2 dogs. How many pets?\"\n\nAnswer: 5") == \
        "Ann has 3 cats and 2 dogs. How many pets?"
    assert parse_problem("Q: Ann has 3 cats and 2 dogs. How many pets? Solution: 3 + 2") == \
        "Ann has 3 cats and 2 dogs. How many pets?"
    assert parse_problem("Sure, here it is.") is None and parse_problem("") is None


def test_synthesize_rejects_duplicates_and_contamination_then_the_loop_labels_by_vote(db, tmp_path, shared_data):
    gsm = shared_data / "gsm8k"
    seeds_file = tmp_path / "seeds.jsonl"
    seeds_file.write_text("\n".join((gsm / "train.jsonl").read_text().splitlines()[:60]))
    reference = [json.loads(line)["question"] for line in (gsm / "test.jsonl").read_text().splitlines()]
    with FakeTeacherServer(memorized=reference[:20], fault_rate=0.15) as srv:
        with Store(db) as st:
            ingest(st, seeds_file, "seeds", split="train")
            # faults and no retries: some requests fail, the next run asks for them again
            r1 = synthesize(st, _teacher(srv, max_retries=0), "seeds", "new", n=40, reference=[str(gsm / "test.jsonl")],
                            concurrency=4)
            assert r1["failed"] > 0 and r1["accepted_total"] <= 40
            srv.fault_rate = 0.0
            r2 = synthesize(st, _teacher(srv), "seeds", "new", n=40, reference=[str(gsm / "test.jsonl")], concurrency=4)
            assert r2["failed"] == 0 and r2["accepted_total"] == 40 and r2["cached"] > 0
            assert srv.synthesized["copy"] and srv.synthesized["copy_changed"] and srv.synthesized["memorized"]
            assert srv.synthesized["favorite"] >= 3 and srv.synthesized["refusal"]

            rows = st.df("SELECT * FROM synth_requests ORDER BY request_idx")
            counts = rows.outcome.value_counts().to_dict()
            assert counts["accepted"] == 40 and len(rows) == r1["requests"] - r1["failed"] + r2["requests"]
            assert all(counts.get(o) for o in ("duplicate", "near_duplicate", "contaminated", "unparsable"))
            assert rows.request_idx.is_unique
            seeds = st.df("SELECT problem_id, question FROM problems WHERE dataset = 'seeds'")
            seed_ids, seed_norms = set(seeds.problem_id), [normalize_text(q) for q in seeds.question]
            assert all(len(ids) == 4 and set(ids) <= seed_ids for ids in rows.seed_problem_ids)
            new = st.df("SELECT p.*, s.seed_problem_ids FROM problems p JOIN synth_requests s USING (problem_id) "
                        "WHERE p.dataset = 'new'")
            assert len(new) == 40 and new.answer.isna().all() and new.answer_text.isna().all()
            assert set(new.source) == {"synthesize:fake-teacher"} and set(new.split) == {"train"}
            # what was kept resembles no seed, no benchmark question and no other kept problem ...
            ref_norms = [normalize_text(q) for q in reference]
            ref_grams, ref_exact = {g for o in ref_norms for g in ngrams(o)}, set(ref_norms)
            kept = [normalize_text(q) for q in new.question]
            for i, norm in enumerate(kept):
                assert _closest(norm, seed_norms) <= 0.8 and coverage(norm, ref_grams, ref_exact) <= 0.8
                assert _closest(norm, kept[:i] + kept[i + 1:]) <= 0.8
            # ... and every rejection is justified
            for row in rows.itertuples():
                norm = normalize_text(row.question) if row.question else None
                if row.outcome == "contaminated":
                    assert coverage(norm, ref_grams, ref_exact) > 0.8
                    assert row.similar_to.startswith(str(gsm / "test.jsonl") + ":")
                elif row.outcome in ("duplicate", "near_duplicate"):
                    assert _closest(norm, seed_norms + kept) > 0.8 and row.similar_to in seed_ids | set(new.problem_id)
        # cached: a rerun sends no request (through the CLI)
        before = srv.requests
        res = pad_cli("--db", db, "synthesize", "--from", "seeds", "--dataset", "new", "--model", "fake-teacher",
                      "--base-url", srv.base_url, "--n", "40", "--reference", gsm / "test.jsonl",
                      "--concurrency", "4", env={"OPENAI_API_KEY": "test"})
        assert res.returncode == 0, res.stderr
        assert "new: 40 synthesized problems (wanted 40)" in " ".join(res.stdout.split()) and srv.requests == before

        # the loop: synthesize -> generate -> execute -> vote -> curate
        with Store(db) as st:
            g = generate(st, _teacher(srv), "new", samples=8, concurrency=8)
            assert (g["added"], g["failed"]) == (320, 0)
            execute(st, dataset="new", workers=2)
            v = vote(st, dataset="new")
            assert v["problems"] == 40 and v["voted"] >= 36
            cur = curate(st, "synth", CurateParams(datasets=["new"], min_agreement=0.6))
            assert cur["problems"] >= 30
            got = st.df("SELECT ce.question, lp.value_num FROM curated_examples ce JOIN labeled_programs lp "
                        "USING (program_id) WHERE ce.name = 'synth'")
            # every curated program returns the answer of the problem the teacher wrote
            assert all(numbers_match(v, srv.answers[" ".join(q.split())]) for q, v in zip(got.question, got.value_num))


def test_synthesize_bad_input_fails_clearly(db, tmp_path):
    with Store(db) as st:
        st.con.execute("INSERT INTO problems (problem_id, dataset, split, question) VALUES ('p', 'd', 'train', 'q')")
        with FakeTeacherServer() as srv:
            teacher = _teacher(srv)
            with pytest.raises(ValueError, match="--from: no dataset 'dd'"):
                synthesize(st, teacher, "dd", "new")
            with pytest.raises(ValueError, match="new dataset"):
                synthesize(st, teacher, "d", "d")
            bad = tmp_path / "p.txt"
            bad.write_text("no placeholder")
            with pytest.raises(ValueError, match="needs an {examples} placeholder"):
                synthesize(st, teacher, "d", "new", prompt=str(bad))
            with pytest.raises(ValueError, match="reference file not found"):
                synthesize(st, teacher, "d", "new", reference=[str(tmp_path / "missing.jsonl")])
            with pytest.raises(ValueError, match="--shots must be"):
                synthesize(st, teacher, "d", "new", shots=0)
            assert srv.requests == 0
        assert st.scalar("SELECT count(*) FROM synth_requests") == 0
