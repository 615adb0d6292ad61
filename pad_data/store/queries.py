"""Read-only queries the CLI and the API share: SQL, datasets, label counts, stats.

Kept free of pandas and of the stages at import, so ``pad sql`` and ``pad stats`` start in a
fraction of a second (they are what one polls while a stage runs). Label counts read
``program_labels``, one row per executed program, with no join.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pad_data.rules.labels import LABELS
from pad_data.store import Store

if TYPE_CHECKING:
    import pandas as pd


def sql(store: Store, query: str, read_files: bool = False) -> pd.DataFrame:
    """Run a read-only query (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) against the
    store; a DataFrame of the result. Any other statement (COPY TO, ATTACH, INSERT, SET...) is
    refused. On a store opened read-only (as `pad sql` does), the connection is also locked
    against files: no file can be read unless ``read_files``, none written either way."""
    return store.read_query(query, read_files=read_files)


def datasets(store: Store) -> list[str]:
    """The datasets the store holds problems of."""
    return [r[0] for r in store.con.execute("SELECT DISTINCT dataset FROM problems ORDER BY 1").fetchall()]


def label_counts(store: Store, dataset: str | None = None) -> dict[str, int]:
    """``{label: programs}`` over the current (latest) execution of each program."""
    q = "SELECT label, count(*) FROM program_labels"
    params = []
    if dataset:
        q += " WHERE dataset = ?"
        params.append(dataset)
    return dict(store.con.execute(q + " GROUP BY label", params).fetchall())


def stats(store: Store) -> dict:
    """Per dataset: problems, problems with gold, programs, executed, and programs per label."""
    labels = list(LABELS)
    pivot = ", ".join(f"count(*) FILTER (WHERE label = '{l}')" for l in labels)
    rows = store.con.execute(f"""
        WITH pr AS (SELECT dataset, count(*) n, count(answer) + count(*) FILTER
                       (WHERE answer IS NULL AND answer_text IS NOT NULL) gold
                    FROM problems GROUP BY dataset),
             progs AS (SELECT pr.dataset, count(*) n FROM programs p JOIN problems pr USING (problem_id)
                       GROUP BY 1),
             lab AS (SELECT dataset, count(*) n, {pivot} FROM program_labels GROUP BY dataset)
        SELECT pr.dataset, pr.n, pr.gold, coalesce(progs.n, 0), coalesce(lab.n, 0), lab.* EXCLUDE (dataset, n)
        FROM pr LEFT JOIN progs USING (dataset) LEFT JOIN lab USING (dataset) ORDER BY pr.dataset""").fetchall()
    rows = [list(r[:5]) + [v or 0 for v in r[5:]] for r in rows]
    used = [i for i, _ in enumerate(labels) if any(r[5 + i] for r in rows)]
    # a teacher whose requests all failed has no programs: it still gets a row (origin teacher)
    teachers = store.con.execute("""
        WITH made AS (SELECT teacher, origin, count(*) AS n, coalesce(sum(prompt_tokens), 0) AS pt,
                             coalesce(sum(completion_tokens), 0) AS ct, sum(cost_usd) AS cost
                      FROM programs GROUP BY ALL),
             failed AS (SELECT f.model, count(DISTINCT f.gen_key) AS n FROM generation_failures f
                        WHERE NOT EXISTS (SELECT 1 FROM programs p WHERE p.gen_key = f.gen_key) GROUP BY 1)
        SELECT coalesce(m.teacher, f.model, '?'), coalesce(m.origin, 'teacher'), coalesce(m.n, 0),
               coalesce(m.pt, 0), coalesce(m.ct, 0), m.cost, coalesce(f.n, 0)
        FROM made m FULL JOIN failed f ON m.teacher = f.model ORDER BY 1, 2""").fetchall()
    return {"labels": [labels[i] for i in used],
            "rows": [r[:5] + [r[5 + i] for i in used] for r in rows],
            "teachers": teachers}
