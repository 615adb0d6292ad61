"""``pad vote``: consensus answers (self-consistency) for problems that have no gold answer.

For each problem with no gold (neither a number nor a text), the numeric results of its programs
vote: the latest execution of each program of origin teacher, import or human (not injected
variants, not a student's programs) that ran and returned a number. Values equal within the label
tolerance (:func:`pad_data.rules.labels.numbers_match`) are one answer, by the one majority rule
(:func:`pad_data.rules.majority.majority`): a value's *votes* are the results that match it, and the
value with the most votes wins (between values with as many votes, the one returned exactly most
often, then the smallest). When two values that do not match each other share the most votes the
problem is *tied* and gets no consensus. A winner with at least ``min_votes`` votes becomes the
problem's consensus, stored in ``consensus`` with ``votes``, ``voters`` (results that voted) and
``agreement`` = votes / voters. ``labeled_programs`` then shows it as the problem's ``gold``
(``gold_source = 'consensus'``) and labels the problem's programs ``correct`` or ``wrong_answer``
against it; problems without one stay ``unverifiable``. A real gold answer always wins: problems
that have one are never voted on.

A vote replaces the consensus rows of the problems it covers (one dataset, or all), so rerunning it
after more programs were generated and executed updates them, and a higher ``min_votes`` withdraws
consensus answers that no longer reach it.

A problem with voting programs not yet executed is skipped (its consensus, if any, left as it is)
and counted: a majority of the programs that ran first can differ from the majority of all of them.
``partial=True`` votes on what has run.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pandas as pd

from pad_data.rules.answers import format_number
from pad_data.rules.majority import majority
from pad_data.rules.options import COUNT, check_names, check_numbers
from pad_data.store import Store, any_of

VOTERS = ("teacher", "import", "human")  # origins whose programs vote


def vote(store: Store, dataset: str | None = None, min_votes: int = 3, partial: bool = False) -> dict:
    """Vote on every problem without gold (of ``dataset``, or all) whose voting programs have all
    been executed (``partial``: on every one); store the consensus answers.

    Returns counts: ``problems`` (without gold), ``unexecuted`` (of them, problems with programs
    not yet executed: skipped, or with ``partial`` voted on anyway) and ``unexecuted_programs``,
    ``skipped``, ``no_results`` (no program returned a number), ``tied``, ``below_min_votes``,
    ``voted`` (consensus stored), the mean ``agreement`` of the voted problems and
    ``agreement_hist`` (voted problems per agreement decile)."""
    check_numbers(("--min-votes", min_votes, COUNT))
    if dataset is not None:
        check_names("--dataset", [dataset], [r[0] for r in store.con.execute(
            "SELECT DISTINCT dataset FROM problems").fetchall()], "dataset")
    scope, params = ("pr.dataset = ?", [dataset]) if dataset else ("TRUE", [])
    no_gold = "pr.answer IS NULL AND trim(coalesce(pr.answer_text, '')) = ''"
    problems = [r[0] for r in store.con.execute(
        f"SELECT problem_id FROM problems pr WHERE {scope} AND {no_gold}", params).fetchall()]
    voters, voter_params = any_of("p.origin", VOTERS)
    unexecuted = dict(store.con.execute(f"""
        SELECT p.problem_id, count(*) FROM programs p JOIN problems pr USING (problem_id)
        WHERE {scope} AND {no_gold} AND {voters}
          AND NOT EXISTS (SELECT 1 FROM program_labels l WHERE l.program_id = p.program_id)
        GROUP BY 1""", params + voter_params).fetchall())
    skipped = set() if partial else set(unexecuted)
    rows = store.con.execute(f"""
        WITH latest AS (
            SELECT program_id, status, value_num FROM executions
            QUALIFY row_number() OVER (PARTITION BY program_id ORDER BY seq DESC) = 1)
        SELECT p.problem_id, e.value_num
        FROM programs p JOIN problems pr USING (problem_id) JOIN latest e USING (program_id)
        WHERE {scope} AND {no_gold} AND {voters}
          AND e.status = 'ok' AND e.value_num IS NOT NULL AND isfinite(e.value_num)""",
                             params + voter_params).fetchall()
    by_problem: dict[str, list[float]] = defaultdict(list)
    for pid, value in rows:
        if pid not in skipped:
            by_problem[pid].append(value)
    stats = {"problems": len(problems), "unexecuted": len(unexecuted),
             "unexecuted_programs": sum(unexecuted.values()), "skipped": len(skipped),
             "no_results": len(problems) - len(skipped) - len(by_problem), "tied": 0, "below_min_votes": 0,
             "voted": 0}
    out = []
    for pid in sorted(by_problem):
        values = by_problem[pid]
        result = majority(values)
        if result is None:
            stats["tied"] += 1
        elif result[1] < min_votes:
            stats["below_min_votes"] += 1
        else:
            answer, votes = result
            out.append({"problem_id": pid, "answer": answer, "answer_text": format_number(answer),
                        "votes": votes, "voters": len(values), "agreement": votes / len(values),
                        "min_votes": min_votes})
    stats["voted"] = len(out)
    covered = f"SELECT problem_id FROM problems pr WHERE {scope}"
    if skipped:  # their consensus stays as it is
        condition, skip_params = any_of("pr.problem_id", sorted(skipped))
        covered += f" AND NOT ({condition})"
        params = params + skip_params
    store.set_consensus(covered, params, pd.DataFrame(out))
    agreements = [r["agreement"] for r in out]
    stats["agreement"] = sum(agreements) / len(agreements) if agreements else None
    hist = Counter(min(int(a * 10), 9) for a in agreements)
    stats["agreement_hist"] = {f"{d / 10:.1f}-{(d + 1) / 10:.1f}": hist[d] for d in sorted(hist)}
    return stats
