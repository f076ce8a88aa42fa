"""The CSV download links in a real headless Chromium: a reviewer filters the calls list,
clicks "these calls" and gets the file of exactly the calls the list shows; the reports
page's link downloads its scorecards. No script error or CSP violation on the way."""

from __future__ import annotations

import csv
import io

import pytest

from .browser_support import chromium, demo_installation, served
from .support import PASSWORDS

pytestmark = pytest.mark.browser


def _download(page, selector: str) -> list[list[str]]:
    with page.expect_download() as info:
        page.click(selector)
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    text = open(download.path(), encoding="utf-8-sig").read()
    return list(csv.reader(io.StringIO(text)))


def test_the_download_links_give_the_csv_of_what_the_page_shows(tmp_path):
    config_path = demo_installation(tmp_path, calls=10)
    problems: list[str] = []
    with served(config_path) as base_url, chromium() as browser:
        page = browser.new_page(accept_downloads=True)
        page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.goto(f"{base_url}/login")
        page.fill("input[name=name]", "qa")
        page.fill("input[name=password]", PASSWORDS["qa"])
        page.click("section.login button[type=submit]")
        page.wait_for_url(f"{base_url}/calls/**")
        page.select_option("select[name=outcome]", "answered")
        page.click(".calls-actions button[type=submit]")
        page.wait_for_url("**outcome=answered**")
        shown = page.locator("table tbody a.open").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        rows = _download(page, "#export-calls")
        assert rows[0][:2] == ["id", "started_at"] and len(rows) - 1 == len(shown) > 0
        assert [f"/calls/{r[0]}" for r in rows[1:]] == shown and all(r[7] == "answered" for r in rows[1:])
        cards = _download(page, "#export-scorecards")
        assert cards[0][:2] == ["review_id", "call_id"]
        page.goto(f"{base_url}/reports/?from=2026-10-01&to=2026-11-30")
        assert _download(page, "#export-scorecards")[0][:2] == ["review_id", "call_id"]
    assert problems == []
