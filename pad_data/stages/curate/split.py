"""The train/validation/test rule, by problem, so one problem's programs are never split.

Problems ingested as ``test`` or ``validation`` keep that split (they can never leak into
train); each other problem draws ``u = int(sha256(f"{seed}:{problem_id}")[:12 hex], 16) / 16**12``
and goes to test when ``u < test_fraction``, to validation when ``u < test_fraction +
validation_fraction``, else to train. The draw depends on the seed and the problem alone, so a
problem is in the same split in every snapshot (program or refine) with the same seed and
fractions.
"""

from __future__ import annotations

from pad_data.stages.curate.params import CurateParams


def split_sql(p: CurateParams) -> str:
    """The split of a row, as a SQL expression over its columns ``problem_id`` and ``source_split``."""
    u = f"CAST(('0x' || left(sha256('{int(p.seed)}:' || problem_id), 12)) AS BIGINT) / {float(16**12)!r}"
    return (f"CASE WHEN source_split IN ('test', 'validation') THEN source_split "
            f"WHEN {u} < {float(p.test_fraction)!r} THEN 'test' "
            f"WHEN {u} < {float(p.test_fraction) + float(p.validation_fraction)!r} THEN 'validation' ELSE 'train' END")
