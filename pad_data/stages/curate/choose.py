"""Steps 2-4 of a curation, the one selection rule of program snapshots and refinement pairs.

Over ranked candidates (an id, ``problem_id``, ``_key``: the dedup key, ``_order``: the
preference, lower first), in SQL:
2. **deduplicate** within each problem: of the rows with one ``_key``, keep the first by
   (``_order``, id) (unless ``dedup`` is ``none``);
3. **keep at most K per problem**, the first by (``_order``, id);
4. **assign splits** by near-duplicate cluster of the question (:mod:`pad_data.stages.curate.split`).
"""

from __future__ import annotations

import duckdb

from pad_data.stages.curate.params import CurateParams
from pad_data.stages.curate.split import assign_splits


def choose(con: duckdb.DuckDBPyConnection, ranked: str, questions: str, p: CurateParams, id_col: str) -> None:
    """Create table ``chosen`` (``id_col``, ``problem_id``, ``split``) in ``con`` from the ranked
    candidates ``ranked`` (a table or registered frame); ``questions`` (``problem_id``,
    ``question``, ``source_split``): the problems the split rule clusters, every candidate's among them."""
    source = ranked
    if p.dedup != "none":
        con.execute(f"""CREATE TABLE kept AS SELECT * FROM {ranked}
                        QUALIFY row_number() OVER (PARTITION BY problem_id, _key ORDER BY _order, {id_col}) = 1""")
        source = "kept"
    con.execute(f"""CREATE TABLE picked AS SELECT {id_col}, problem_id FROM {source}
                    QUALIFY row_number() OVER (PARTITION BY problem_id ORDER BY _order, {id_col}) <= ?""",
                [int(p.max_per_problem)])
    assign_splits(con, questions, p)
    con.execute("CREATE TABLE chosen AS SELECT picked.*, split FROM picked JOIN problem_split USING (problem_id)")
    con.execute("DROP TABLE picked")
