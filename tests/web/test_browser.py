"""The QA web app in a real headless Chromium (Debian's, driven by Playwright), served
over HTTP as `ivr web` serves it, on an installation filled by `ivr demo`: a reviewer
logs in, searches, opens a call, plays it, seeks through the timeline, saves a score and
reads the dashboard.
Screenshots of each step are kept in test-artifacts/browser/. Any script error or
Content-Security-Policy violation in the page fails the test."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from ivr.store.models import AuditEntry, Call, Review

from .browser_support import ARTIFACTS, chromium, demo_installation, served
from .support import PASSWORDS

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    config_path = demo_installation(tmp_path_factory.mktemp("qa-browser"))
    with served(config_path) as base_url:
        yield base_url, config_path


def _db(config_path):
    from ivr.settings.config import load_config
    from ivr.store.db import create_db_engine, database_url, session_factory

    return session_factory(create_db_engine(database_url(load_config(config_path))))()


def _audio_time(page) -> float:
    return page.evaluate("document.getElementById('call-audio').currentTime")


def _wait_until(page, expression: str, timeout: float = 15.0) -> None:
    """Poll `expression` in the page. (Playwright's wait_for_function evaluates a string
    with eval, which the app's Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:g}s: {expression}")
        page.wait_for_timeout(100)


def test_a_reviewer_searches_opens_plays_seeks_and_scores_a_call(site):
    base_url, config_path = site
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" else None)

        # 1. log in: the calls list asked for sends us through the log-in page and back
        page.goto(f"{base_url}/calls/")
        assert "/login" in page.url
        page.fill("input[name=name]", "qa")
        page.fill("input[name=password]", PASSWORDS["qa"])
        page.click("section.login button[type=submit]")
        page.wait_for_url(f"{base_url}/calls/**")
        page.screenshot(path=str(ARTIFACTS / "1-calls.png"), full_page=True)

        # 2. search: answered calls of one caller, by part of the number
        with _db(config_path) as session:
            target = session.scalars(select(Call).where(Call.outcome == "answered", Call.talk > 20,
                                                        Call.caller_digits != "")
                                     .order_by(Call.started_at.desc())).first()
            assert target is not None, "the demo made no answered call"
        part = target.caller_digits[-6:]
        page.select_option("select[name=outcome]", "answered")
        page.fill("input[name=caller]", part)
        page.click(".calls-actions button[type=submit]")
        page.wait_for_url("**outcome=answered**")
        rows = page.locator("table tbody tr:has(a.open)")
        assert rows.count() >= 1
        texts = rows.all_inner_texts()
        assert all("answered" in text for text in texts), texts
        page.screenshot(path=str(ARTIFACTS / "2-search.png"), full_page=True)

        # 3. open the call
        page.click(f"a.open[href$='/calls/{target.id}']")
        page.wait_for_url(f"**/calls/{target.id}")
        assert page.get_attribute("#call", "data-call-id") == target.id
        assert page.inner_text("#fact-outcome").strip().startswith("answered") or "answered" in page.inner_text("#call-outcome")
        assert page.get_attribute("#waveform path.wave-bars", "d")  # the indexed recording's peaks
        page.screenshot(path=str(ARTIFACTS / "3-call.png"), full_page=True)

        # 4. play: Space on the waveform starts the recording
        page.focus("#waveform")
        page.keyboard.press("Space")
        _wait_until(page, "document.getElementById('call-audio').currentTime > 0.5")
        assert page.evaluate("!document.getElementById('call-audio').paused")

        # 5. seek through the timeline: the agent's entry, then back to an early one
        agent = page.locator("#timeline li[id$='-agent']").first
        agent_t = float(agent.get_attribute("data-t"))
        assert agent_t > 5, "the agent answers after the menus"
        agent.locator("button.tl-time").click()
        _wait_until(page, f"Math.abs(document.getElementById('call-audio').currentTime - {agent_t}) < 1.5")
        page.wait_for_timeout(700)
        assert agent_t - 0.5 <= _audio_time(page) < agent_t + 3  # it plays on from there
        assert "current" in (agent.get_attribute("class") or "")
        page.screenshot(path=str(ARTIFACTS / "4-seek-agent.png"), full_page=True)
        early = page.locator("#timeline li[data-kind]").nth(2)
        early_t = float(early.get_attribute("data-t"))
        early.locator("button.tl-time").click()
        _wait_until(page, f"Math.abs(document.getElementById('call-audio').currentTime - {early_t}) < 1.5")

        # 6. score the call
        criteria = page.locator("#scorecard-form select[id^=score-]")
        assert criteria.count() == 7  # the default scorecard of config.yaml
        for i in range(criteria.count()):
            criteria.nth(i).select_option(str(3 + i % 3))
        page.fill("#review-notes", "Friendly; offered the call-back clearly.")
        page.fill("#review-tags", "Coaching, good-example")
        page.click("#review-save")
        page.wait_for_selector("table#reviews tr[data-reviewer=qa]")
        page.screenshot(path=str(ARTIFACTS / "5-scored.png"), full_page=True)

        # 7. the dashboard: its charts, and the menu tree its script fetches afterwards
        page.click("header nav a:has-text('Dashboard')")
        page.wait_for_selector("#tile-calls")
        page.fill("#dash-from", "2026-10-20")
        page.fill("#dash-to", "2026-11-24")
        page.click("#dash-filters button[type=submit]")
        page.wait_for_selector("#menu-tree svg", timeout=30000)
        assert page.locator("#dash-tiles .tile").count() >= 6
        assert page.locator("#menu-tree svg a").count() > 5  # nodes link to the calls that reached them
        page.screenshot(path=str(ARTIFACTS / "6-dashboard.png"), full_page=True)

    assert problems == []
    with _db(config_path) as session:
        [review] = session.scalars(select(Review).where(Review.call_id == target.id)).all()
        assert review.reviewer == "qa" and review.notes.startswith("Friendly")
        assert sorted(review.scores.values()) == sorted(3 + i % 3 for i in range(7))
        call = session.get(Call, target.id)
        assert call.reviewed and sorted(t.tag for t in call.tags) == ["coaching", "good-example"]
        # one "play" in the audit log however often the reviewer sought
        plays = session.scalars(select(AuditEntry).where(AuditEntry.call_id == target.id, AuditEntry.action == "play")).all()
        assert [(a.user, a.action) for a in plays] == [("qa", "play")]
