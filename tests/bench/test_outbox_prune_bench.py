"""bench/outbox_prune_bench.py: the outbox prune in batches against one DELETE, on SQLite
and on a throwaway PostgreSQL, with the rows that must stay checked."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import outbox_prune_bench  # noqa: E402


def test_a_small_run_on_both_databases_deletes_the_old_rows_in_batches_and_keeps_the_rest(capsys):
    assert outbox_prune_bench.main(["--rows", "2500", "--stay", "300", "--postgres"]) == 0
    out = capsys.readouterr().out
    for database in ("sqlite", "postgresql"):
        assert f"outbox prune on {database}: 2,500 old delivered rows, 300 that stay" in out
    assert out.count("2,500 deleted in 3 batches of 1,000") == 2
    assert out.count("kept      300 rows (expected 300): ok") == 2
