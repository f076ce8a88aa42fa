"""The calls list's search on a million calls in SQLite: is a page under 100 ms?

Fills a fresh SQLite database with N synthetic calls over 90 days (default 1,000,000) with
bench/calls_db.py, or reuses the one kept with --keep FILE. Then
it runs `ivr.web.search.search`, the very function behind /calls/, for a mix of the
searches QA staff make: each filter alone, combined, sorted each way, first and later
pages. Each runs once to warm up and then --runs times; it prints p50/p95/max per search,
the count of matches (which the page asks for after it is shown, up to 1,000) and the
overall p95 of the pages, with PASS/FAIL against 100 ms. Last, whole pages through the
Flask test client, logged in (the search, the drop-downs and the template), and their p95.
It always exits 0.

    .venv/bin/python bench/search_bench.py [--calls N] [--keep FILE] [--runs N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import calls_db as generator  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from werkzeug.datastructures import MultiDict  # noqa: E402

from ivr.store import Call  # noqa: E402
from ivr.web.calls import parse_filters  # noqa: E402
from ivr.web.search import CallFilters, count_capped, search  # noqa: E402

TARGET = 0.100
ZONE_OF_CONFIG = "Europe/Warsaw"  # config.yaml's office schedule: the dates below are its days
# the generator's calls end at generator.END: its last day, week and month
LAST_DAY = (generator.END - dt.timedelta(days=1)).date().isoformat()
WEEK = f"from={(generator.END - dt.timedelta(days=7)).date().isoformat()}&to={LAST_DAY}"
MONTH = f"from={(generator.END - dt.timedelta(days=30)).date().isoformat()}"


def searches(number: str) -> dict[str, tuple[str, int]]:
    """Name -> (query string, page: 1 is the first, n follows the "older" link n-1 times)."""
    return {
        "all calls, newest first": ("", 1),
        "today": (f"from={LAST_DAY}", 1),
        "this week": (WEEK, 1),
        "last 30 days": (MONTH, 1),
        "department": ("department=complaints", 1),
        "agent": ("agent=PJSIP/103", 1),
        "outcome abandoned": ("outcome=abandoned", 1),
        "outcome failed (1%)": ("outcome=failed", 1),
        "caller: a customer's number, 90 days": (f"caller={number}", 1),
        "caller: 6 digits, 90 days": ("caller=123+456", 1),
        "caller: 4 digits, this week": (f"caller=6012&{WEEK}", 1),
        "longer than 30 min": ("min_duration=1800", 1),
        "shorter than 10 s, last 30 days": (f"max_duration=10&{MONTH}", 1),
        "keys 1 3 anywhere": ("keys=1+3", 1),
        "keys 1 4 2 from the start": ("keys=1+4+2&keys_at=start", 1),
        "node reached: complaints": ("node=main:complaints", 1),
        "node reached: holiday notice (1%)": ("node=main:holiday_notice", 1),
        "NPS detractors": ("nps=detractor", 1),
        "NPS promoters, last 30 days": (f"nps=promoter&{MONTH}", 1),
        "tag": ("tag=escalated", 1),
        "not reviewed, this week": (f"reviewed=no&{WEEK}", 1),
        "live calls only": ("source=live", 1),
        "week + sales + abandoned": (f"{WEEK}&department=sales&outcome=abandoned", 1),
        "month + agent + detractors": (f"{MONTH}&agent=PJSIP/101&nps=detractor", 1),
        "support + account node + NPS <= 3": ("department=support&node=main:support_account&nps_max=3", 1),
        "week + keys 1 2 + answered + >= 5 min": (f"{WEEK}&keys=1+2&outcome=answered&min_duration=300", 1),
        "tag complaint + not reviewed": ("tag=complaint&reviewed=no", 1),
        "today + caller 601": (f"from={LAST_DAY}&caller=601", 1),
        "longest calls": ("sort=duration", 1),
        "shortest calls this week": (f"sort=duration&dir=asc&{WEEK}", 1),
        "longest waits this week": (f"sort=wait&{WEEK}", 1),
        "longest talks, sales, this week": (f"sort=talk&department=sales&{WEEK}", 1),
        "lowest NPS, last 30 days": (f"sort=nps&dir=asc&{MONTH}", 1),
        "highest NPS, complaints": ("sort=nps&department=complaints", 1),
        "longest calls, sales, 90 days": ("sort=duration&department=sales", 1),
        "longest waits, 90 days": ("sort=wait", 1),
        "all calls, page 2": ("", 2),
        "all calls, page 10": ("", 10),
        "sales this week, page 3": (f"department=sales&{WEEK}", 3),
        "longest calls, page 2": ("sort=duration", 2),
        "lowest NPS month, page 2": (f"sort=nps&dir=asc&{MONTH}", 2),
        "holiday notice, page 2": ("node=main:holiday_notice", 2),
    }


def filters_of(query: str) -> CallFilters:
    filters = parse_filters(MultiDict(parse_qsl(query)), ZoneInfo(ZONE_OF_CONFIG))
    assert not filters.errors, (query, filters.errors)
    return filters


def on_page(session: Session, filters: CallFilters, page: int) -> CallFilters:
    """The search of page `page`: the first page's filters, with the cursor of the page before."""
    for _ in range(page - 1):
        filters = replace(filters, after=search(session, filters).next)
    return filters


def timed(work: Callable[[], object], runs: int) -> list[float]:
    work()  # warm-up: the statement cache, the pages of the database file
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def spread(values: list[float]) -> str:
    return (f"p50 {statistics.median(values) * 1e3:.1f} ms, p95 {p95(values) * 1e3:.1f} ms, "
            f"max {max(values) * 1e3:.1f} ms")


def installation(folder: Path, database: Path) -> Path:
    """A throwaway installation (the repository's config.yaml and flows) on the bench database."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["database"] = f"sqlite:///{database.resolve()}"
    raw["web"] = {"host": "127.0.0.1", "port": 5000}
    raw["recordings"] = {"dir": "recordings", "retention_days": 90}
    for name in ("flows", "data"):
        shutil.copytree(REPO / name, folder / name)
    (folder / "recordings").mkdir()
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def http_pages(database: Path, queries: list[str], runs: int) -> list[float]:
    """Whole /calls/ pages through the Flask test client, logged in as a qa user."""
    import re

    from ivr.settings.config import load_config
    from ivr.errors import WebError
    from ivr.web import create_app
    from ivr.web.users import add_user, set_password

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(load_config(installation(Path(folder), database)))
        engine = app.extensions["ivr"].engine
        password = "bench-password-1"
        try:
            add_user(engine, "bench-qa", password, "qa")
        except WebError:  # a kept database has it from an earlier run
            set_password(engine, "bench-qa", password)
        client = app.test_client()
        form = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        logged_in = client.post("/login", data={"name": "bench-qa", "password": password, "csrf_token": token})
        assert logged_in.status_code == 302, "the bench user could not log in"
        times = []
        for query in queries:
            def get(query: str = query) -> None:
                response = client.get(f"/calls/?{query}")
                assert response.status_code == 200, response.status_code
            times += timed(get, runs)
        engine.dispose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--keep", help="keep the database in this file (reused when it exists)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each search (after one to warm up)")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory()
    path = Path(args.keep) if args.keep else Path(folder.name) / "qa.db"
    fresh = not path.exists()
    engine = generator.open_database(path, args.calls)
    all_times: list[float] = []
    count_all: list[float] = []
    with Session(engine) as session:
        total = session.scalar(select(func.count()).select_from(Call))
        number = session.scalar(select(Call.caller_digits).order_by(Call.started_at.desc()).limit(1)) or "48123"
        print(f"{total:,} calls in {'a kept' if not fresh else 'a new'} database; {args.runs} runs of each search "
              f"after one to warm up")
        print(f"  {'search':42s} {'p50':>7s} {'p95':>7s} {'max':>7s}  rows  count of matches (asked after the page)")
        for name, (query, page) in searches(number).items():
            filters = on_page(session, filters_of(query), page)
            times = timed(lambda: search(session, filters), args.runs)
            all_times += times
            found = search(session, filters)
            count_times = timed(lambda: count_capped(session, filters), 2)
            count_all += count_times
            shown = count_capped(session, filters)
            matches = "1,000+" if shown > 1000 else f"{shown:,}"
            print(f"  {name:42s} {statistics.median(times) * 1e3:7.1f} {p95(times) * 1e3:7.1f} "
                  f"{max(times) * 1e3:7.1f}  {len(found.rows):4d}  {matches:>6s} in "
                  f"{statistics.median(count_times) * 1e3:.1f} ms")
    engine.dispose()
    overall = p95(all_times)
    print(f"counts of matches (asked by the page once shown, up to 1,000): {spread(count_all)}")
    print(f"search pages: {spread(all_times)} over {len(all_times)} runs; target p95 < 100 ms: "
          f"{'PASS' if overall < TARGET else 'FAIL'}")
    mix = searches(number)
    pages = [mix[name][0] for name in ("all calls, newest first", "week + sales + abandoned", "today + caller 601",
                                        "longest calls", "node reached: holiday notice (1%)", "NPS detractors",
                                        "caller: a customer's number, 90 days")]
    pages.append("from=not-a-date&outcome=exploded&department=sales")  # errors shown, the rest searched
    http = http_pages(path, pages, args.runs)
    print(f"whole pages through Flask ({len(pages)} searches x {args.runs}, logged in): {spread(http)}")
    folder.cleanup()


if __name__ == "__main__":
    main()
