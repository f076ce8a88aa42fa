"""Call-backs in the QA web app, in a real headless Chromium: a reviewer reads the
dashboard's call-backs (pending, done, failed, and the list still to be made), opens the
call of a pending one from that list and reads its tries on the call page. Screenshots go
to test-artifacts/browser/. Any script error or CSP violation fails the test."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ivr.settings.config import load_config
from ivr.store.callbacks import ANSWERED, BUSY, NO_ANSWER, Booking, CallbackStore
from ivr.store.db import create_db_engine, database_url
from ivr.store.models import Call

from .browser_support import ARTIFACTS, chromium, demo_installation, served
from .support import PASSWORDS

pytestmark = pytest.mark.browser


def book_on_demo_calls(config_path) -> dict[str, str]:
    """Call-backs on three demo calls, booked now: one done, one failed, one pending
    after a try that was not answered; {status: call id}."""
    engine = create_db_engine(database_url(load_config(config_path)))
    try:
        with engine.connect() as conn:
            # the demo's call-back calls first; any others after them (24 calls hold few call-backs)
            ids = list(conn.scalars(select(Call.id).order_by((Call.outcome == "callback").desc(), Call.started_at)))[:3]
        assert len(ids) == 3, "the demo made fewer than three calls"
        store = CallbackStore(engine, owner="engine-1")
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        made = {}
        for n, (call_id, results) in enumerate(zip(ids, ([ANSWERED], [BUSY, NO_ANSWER], [NO_ANSWER]))):
            booked = now - dt.timedelta(minutes=30 - n)
            callback_id = store.book(Booking(call_id=call_id, number=f"60010020{n}", department="sales", queue="sales",
                                             place_at=booked - dt.timedelta(minutes=3), booked_at=booked,
                                             due_by=booked + dt.timedelta(hours=1), schedule="office", max_attempts=2,
                                             retry_pause=300))
            for k, result in enumerate(results):
                at = booked + dt.timedelta(minutes=1 + 6 * k)
                claim = store.claim(callback_id, "turn", at)
                store.finish(claim.attempt_id, result, at + dt.timedelta(seconds=20),
                             asterisk_reason={ANSWERED: "4", BUSY: "5", NO_ANSWER: "3"}[result],
                             uniqueid=f"1700000200.{n}{k}")
            made[["done", "failed", "pending"][n]] = call_id
        return made
    finally:
        engine.dispose()


def test_a_reviewer_follows_a_pending_call_back_from_the_dashboard_to_its_call(tmp_path_factory):
    config_path = demo_installation(tmp_path_factory.mktemp("qa-callbacks"))
    made = book_on_demo_calls(config_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with served(config_path) as base_url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.goto(f"{base_url}/dashboard/?days=7")
        page.fill("input[name=name]", "qa")
        page.fill("input[name=password]", PASSWORDS["qa"])
        page.click("section.login button[type=submit]")
        page.wait_for_url(f"{base_url}/dashboard/**")
        section = page.locator("#dash-callbacks")
        assert section.is_visible()
        assert section.get_attribute("data-callbacks-pending") == "1"
        assert section.get_attribute("data-callbacks-done") == "1"
        assert section.get_attribute("data-callbacks-failed") == "1"
        assert "1 pending" in page.inner_text("#callbacks-pending") and "1 done" in page.inner_text("#callbacks-done")
        rows = page.locator("#callbacks-open tbody tr")
        assert rows.count() == 1 and "600100202" in rows.first.inner_text() and "1 / 2" in rows.first.inner_text()
        section.screenshot(path=str(ARTIFACTS / "callbacks-dashboard.png"))

        rows.first.locator("a").click()
        page.wait_for_url(f"**/calls/{made['pending']}#callbacks")
        callback = page.locator("#callbacks .callback")
        assert callback.get_attribute("data-status") == "pending"
        tries = page.locator("#callbacks tr.callback-try")
        assert tries.count() == 1 and tries.first.get_attribute("data-result") == "no answer"
        assert "an agent was free, nobody ahead" in tries.first.inner_text()
        assert "Next try" in page.inner_text("#callbacks")
        page.locator("#callbacks").screenshot(path=str(ARTIFACTS / "callbacks-call.png"))

        page.goto(f"{base_url}/calls/{made['failed']}")
        assert page.locator("#callbacks .callback").get_attribute("data-status") == "failed"
        assert [t.get_attribute("data-result") for t in page.locator("#callbacks tr.callback-try").all()] == \
            ["busy", "no answer"]
    assert problems == []
