"""A million calls in SQLite, as a contact centre's QA database holds them after 90 days.

Fills a fresh SQLite database (migrated with init_db) with N synthetic calls spread over
90 days, in time order as live calls are written (default 1,000,000; departments,
agents, outcomes, durations, caller numbers, keys, survey scores, tags, reviewed flags
and the nodes each call reached, in plausible shares). bench/search_bench.py measures
the QA search on it; run this on its own to make the database once and keep it:

    .venv/bin/python bench/calls_db.py FILE [--calls N]

A FILE that exists is reused as it is. Filling a million calls takes a minute or two.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import event, func, insert, select  # noqa: E402

from ivr.store import Call, CallNode, CallTag, init_db  # noqa: E402

UTC = dt.timezone.utc
END = dt.datetime(2026, 11, 30, tzinfo=UTC)
DAYS = 90
DEPARTMENTS = ["sales", "complaints", "support", "operator", "premium", "backup"]
AGENTS = [f"PJSIP/{n}" for n in (100, 101, 102, 103, 104, 110, 190, 191, 192, 193)]
OUTCOMES = ["answered"] * 60 + ["abandoned"] * 15 + ["voicemail"] * 8 + ["callback"] * 7 + ["self_service"] * 7 \
    + ["unanswered"] * 2 + ["failed"]
PATHS = [  # (keys, nodes reached); drawn with the weights of PATH_WEIGHTS
    ("1 1", ["welcome", "open_check", "vip_check", "language", "main_menu", "sales", "survey", "goodbye"]),
    ("1 2", ["welcome", "open_check", "vip_check", "language", "main_menu", "complaints", "survey", "goodbye"]),
    ("1 3 ********", ["welcome", "open_check", "vip_check", "language", "main_menu", "support_account",
                      "account_route", "support", "survey", "goodbye"]),
    ("1 4 2", ["welcome", "open_check", "vip_check", "language", "main_menu", "faq"]),
    ("1 0", ["welcome", "open_check", "vip_check", "language", "main_menu", "operator", "survey", "goodbye"]),
    ("", ["welcome", "open_check", "after_hours", "goodbye"]),
    ("", ["welcome", "open_check", "holiday_notice", "after_hours", "goodbye"]),
]
PATH_WEIGHTS = [30, 15, 20, 15, 12, 7, 1]
TAGS = ["complaint", "training", "escalated", "praise"]


def fill(engine, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    chunk = 20_000
    step = DAYS * 86400 / n
    begin = END - dt.timedelta(days=DAYS)
    for start in range(0, n, chunk):
        calls, nodes, tags = [], [], []
        for i in range(start, min(n, start + chunk)):
            # in time order, as live calls are written (rows of a day lie together)
            started = begin + dt.timedelta(seconds=(i + rng.random()) * step)
            keys, path = rng.choices(PATHS, PATH_WEIGHTS)[0]
            outcome = rng.choice(OUTCOMES)
            answered = outcome == "answered"
            duration = rng.expovariate(1 / 240)
            caller = f"+48 {rng.randrange(100, 999)} {rng.randrange(100, 999)} {rng.randrange(100, 999)}"
            call_id = f"{int(started.timestamp())}.{i}"
            calls.append({
                "id": call_id, "uniqueid": call_id, "channel": f"PJSIP/trunk-{i:08x}", "source": "live",
                "flow": "main", "flow_version": "abc123", "caller": caller,
                "caller_digits": "".join(c for c in caller if c.isdigit()), "caller_name": None, "language": "pl",
                "started_at": started, "ended_at": started + dt.timedelta(seconds=duration), "duration": duration,
                "outcome": outcome, "department": rng.choice(DEPARTMENTS),
                "queue_wait": rng.random() * 120, "agent": rng.choice(AGENTS) if answered else None,
                "talk": rng.random() * 600 if answered else None, "abandoned": outcome == "abandoned",
                "survey_score": rng.randrange(11) if rng.random() < 0.1 else None,
                "last_flow": "main", "last_node": path[-1], "keys": keys, "reviewed": rng.random() < 0.02,
            })
            nodes += [{"call_id": call_id, "flow": "main", "node": node, "t": float(k)} for k, node in enumerate(path)]
            if rng.random() < 0.01:
                tags.append({"call_id": call_id, "tag": rng.choice(TAGS)})
        with engine.begin() as conn:
            conn.execute(insert(Call), calls)
            conn.execute(insert(CallNode), nodes)
            if tags:
                conn.execute(insert(CallTag), tags)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def open_database(path: Path, calls: int):
    """The SQLite database at `path`, migrated; filled with `calls` calls when it is new
    (a kept one is reused as it is)."""
    fresh = not path.exists()
    engine = init_db(f"sqlite:///{path.resolve()}")
    if fresh:
        engine.dispose()  # test data need not survive a crash: fill without syncs
        event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA synchronous = OFF"))
        began = time.perf_counter()
        fill(engine, calls)
        print(f"filled {calls:,} calls in {time.perf_counter() - began:.0f} s ({path.stat().st_size / 1e6:.0f} MB)")
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="the SQLite file (reused when it exists)")
    parser.add_argument("--calls", type=int, default=1_000_000)
    args = parser.parse_args()
    engine = open_database(args.file, args.calls)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(Call)).scalar_one()
    engine.dispose()
    print(f"{args.file}: {total:,} calls, {args.file.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
