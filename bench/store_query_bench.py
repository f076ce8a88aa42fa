"""The QA filters on a million calls in SQLite: does the schema keep them under 100 ms?

Fills a fresh SQLite database (migrated with init_db) with N synthetic calls spread over
90 days (default 1,000,000; departments, agents, outcomes, durations, caller numbers,
keys, survey scores, tags, reviewed flags and the nodes each call reached, in plausible
shares), then runs the QA list query, "the newest 50 matching calls", for each filter
the web app will offer, alone and combined with others, and the count of matches. Each
query runs 5 times; it prints the median time of each, p95 over all list queries, and
PASS/FAIL against 100 ms. The database is kept with --keep FILE (it takes a minute or two
to fill).

    .venv/bin/python bench/store_query_bench.py [--calls N] [--keep FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import and_, event, exists, func, insert, select  # noqa: E402

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


def queries() -> dict[str, list]:
    week = Call.started_at >= END - dt.timedelta(days=7)
    month = Call.started_at >= END - dt.timedelta(days=30)
    # the shapes the web app should use: EXISTS for a node most calls reach (walk the date
    # index, probe each call), IN for a rare node or a tag (read the few calls, then sort)
    reached = lambda node: exists().where(CallNode.call_id == Call.id, CallNode.node == node)  # noqa: E731
    rarely_reached = lambda node: Call.id.in_(select(CallNode.call_id).where(CallNode.node == node))  # noqa: E731
    tagged = lambda tag: Call.id.in_(select(CallTag.call_id).where(CallTag.tag == tag))  # noqa: E731
    return {
        "last 7 days": [week],
        "all 90 days": [],
        "department, 7 days": [week, Call.department == "complaints"],
        "agent, 30 days": [month, Call.agent == "PJSIP/103"],
        "outcome, 30 days": [month, Call.outcome == "failed"],
        "caller partial, 90 days": [Call.caller_digits.contains("48123456")],
        "caller partial (instr), 90 days": [func.instr(Call.caller_digits, "48123456") > 0],
        "caller partial, 30 days": [month, Call.caller_digits.contains("48123456")],
        "caller partial, 7 days": [week, Call.caller_digits.contains("4567")],
        "caller exact number, 90 days": [Call.caller_digits == "48123456789"],
        "duration > 30 min, 30 days": [month, Call.duration > 1800],
        "keys '1 3', 7 days": [week, Call.keys.like("%1 3%")],
        "node reached, 7 days": [week, reached("support_account")],
        "node reached + outcome, 90 days": [reached("after_hours"), Call.outcome == "failed"],
        "rare node reached, 90 days": [rarely_reached("holiday_notice")],
        "NPS <= 6, 30 days": [month, Call.survey_score <= 6],
        "tag, 90 days": [tagged("escalated")],
        "not reviewed, 7 days": [week, Call.reviewed.is_(False)],
        "dept + outcome + agent, 30 days": [month, Call.department == "sales", Call.outcome == "answered",
                                            Call.agent == "PJSIP/101"],
        "dept + NPS + node, 90 days": [Call.department == "support", Call.survey_score <= 3,
                                       reached("support_account")],
    }


def timed(conn, stmt, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        conn.execute(stmt).all()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


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
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--keep", help="keep the database in this file (reused when it exists)")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory()
    engine = open_database(Path(args.keep) if args.keep else Path(folder.name) / "qa.db", args.calls)
    list_times = []
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(Call)).scalar_one()
        print(f"{total:,} calls; median of 5 runs: newest 50 | count of matches")
        for name, where in queries().items():
            cond = and_(*where) if where else None
            page = select(Call.id, Call.started_at, Call.caller, Call.department, Call.outcome, Call.duration)
            page = (page.where(cond) if cond is not None else page).order_by(Call.started_at.desc()).limit(50)
            count = select(func.count()).select_from(Call)
            count = count.where(cond) if cond is not None else count
            t_page, t_count = timed(conn, page), timed(conn, count, runs=3)
            n = conn.execute(count).scalar_one()
            list_times.append(t_page)
            print(f"  {name:34s} {t_page * 1000:7.1f} ms | {t_count * 1000:7.1f} ms  ({n:,} calls)")
    p95 = sorted(list_times)[max(0, int(round(0.95 * len(list_times))) - 1)]
    print(f"list queries: p95 {p95 * 1000:.1f} ms, max {max(list_times) * 1000:.1f} ms; target p95 < 100 ms: "
          f"{'PASS' if p95 < 0.1 else 'FAIL'}")
    engine.dispose()
    folder.cleanup()


if __name__ == "__main__":
    main()
