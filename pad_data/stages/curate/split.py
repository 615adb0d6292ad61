"""The train/validation/test rule, by near-duplicate cluster of the question, so neither one
problem's programs nor two questions ``pad check`` would call the same are ever split.

A problem's cluster is the question's :func:`~pad_data.stages.check.leak_key` (lowercased,
punctuation dropped, whitespace collapsed: exactly what ``pad check``'s leak check compares), or
the problem itself when that key is empty. Clusters are taken over every problem of the
snapshot's datasets (not only those with candidates), so a problem's split does not depend on
which programs were selected. A cluster with a problem ingested as ``test`` goes to test, else
one with a problem ingested as ``validation`` to validation (so an ingested test question never
has a near-duplicate in train); each other cluster draws ``u = int(sha256(f"{seed}:{cluster}")[:12
hex], 16) / 16**12`` and goes to test when ``u < test_fraction``, to validation when ``u <
test_fraction + validation_fraction``, else to train. The draw depends on the seed and the
question alone, so a problem is in the same split in every snapshot (program or refine) of the
same datasets with the same seed and fractions.

All in SQL over tables in a scratch DuckDB (the key a vectorized Python function there), each
statement a scan, an aggregate or one join, so it streams and spills at any size.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
from duckdb.sqltypes import VARCHAR

from pad_data.stages.check import leak_key
from pad_data.stages.curate.candidates import ranged
from pad_data.stages.curate.params import CurateParams
from pad_data.store import Store, any_of, copy_into

KEY_FUNCTION = "pad_leak_key"


def copy_questions(store: Store, con: duckdb.DuckDBPyConnection, p: CurateParams, table: str = "q") -> None:
    """Create ``table`` (``problem_id``, ``question``, ``source_split``) in ``con``: every problem
    of the snapshot's datasets, read range by range within the budget (a scan, no join)."""
    condition, params = any_of("dataset", p.datasets) if p.datasets else ("true", [])
    query = f"SELECT problem_id, question, split AS source_split FROM problems WHERE {{range}} AND {condition}"
    for i, reader in enumerate(ranged(store, query, params)):
        copy_into(con, table, reader, append=i > 0)


def assign_splits(con: duckdb.DuckDBPyConnection, questions: str, p: CurateParams) -> None:
    """Create table ``problem_split`` (``problem_id``, ``split``) in ``con`` for every problem of
    ``questions`` (``problem_id``, ``question``, ``source_split``), by the rule of the module
    docstring; the tables it makes on the way are dropped."""
    _register_key(con)
    try:
        con.execute(f"""CREATE TABLE clustered AS SELECT problem_id, source_split,
                            coalesce(left(sha256({KEY_FUNCTION}(question)), 32), problem_id) AS _cluster
                        FROM {questions}""")
    finally:
        con.remove_function(KEY_FUNCTION)
    u = f"CAST(('0x' || left(sha256('{int(p.seed)}:' || _cluster), 12)) AS BIGINT) / {float(16**12)!r}"
    con.execute(f"""CREATE TABLE cluster_split AS SELECT _cluster, CASE
                        WHEN bool_or(source_split = 'test') THEN 'test'
                        WHEN bool_or(source_split = 'validation') THEN 'validation'
                        WHEN {u} < {float(p.test_fraction)!r} THEN 'test'
                        WHEN {u} < {float(p.test_fraction) + float(p.validation_fraction)!r}
                            THEN 'validation'
                        ELSE 'train' END AS split
                    FROM clustered GROUP BY _cluster""")
    con.execute("""CREATE TABLE problem_split AS SELECT problem_id, split FROM clustered
                   JOIN cluster_split USING (_cluster)""")
    con.execute("DROP TABLE clustered")
    con.execute("DROP TABLE cluster_split")


def _register_key(con: duckdb.DuckDBPyConnection) -> None:
    """:func:`~pad_data.stages.check.leak_key` as the SQL function :data:`KEY_FUNCTION` of ``con``
    (NULL for an empty key), vectorized: DuckDB hands it a few thousand questions at a time."""
    def keys(questions: pa.Array) -> pa.Array:
        return pa.array([leak_key(q) for q in questions.to_pylist()], pa.string())

    con.create_function(KEY_FUNCTION, keys, [VARCHAR], VARCHAR, type="arrow", null_handling="special",
                        side_effects=False)
