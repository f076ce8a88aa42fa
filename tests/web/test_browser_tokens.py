"""The API tokens page in a real headless Chromium: an admin makes a token for a qa user on the
page, copies it with the Copy button (the browser's clipboard), and a request with the copied
value to /api/v1/calls answers 200; the admin revokes it (a question first) and the same
request answers 401. Screenshots go to test-artifacts/browser/. Any script error or CSP
violation fails the test."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from .browser_support import ARTIFACTS, chromium, served
from .support import PASSWORDS, make_installation

pytestmark = pytest.mark.browser


def api_status(base_url: str, token: str) -> int:
    """The status of GET /api/v1/calls with the token, from outside the browser (a CRM's request)."""
    request = urllib.request.Request(f"{base_url}/api/v1/calls", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert "calls" in json.loads(response.read())
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_an_admin_makes_copies_uses_and_revokes_a_token(tmp_path):
    config_path = make_installation(tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import expect

    problems: list[str] = []
    with served(config_path) as base_url, chromium() as browser:
        context = browser.new_context(viewport={"width": 1366, "height": 900},
                                      permissions=["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.goto(f"{base_url}/calls/")
        page.fill("input[name=name]", "admin")
        page.fill("input[name=password]", PASSWORDS["admin"])
        page.click("section.login button[type=submit]")
        page.wait_for_url(f"{base_url}/calls/**")
        page.click("header.top nav >> text=API tokens")  # linked from the navigation
        page.wait_for_url(f"{base_url}/tokens/")
        assert "No API tokens yet." in page.inner_text("#tokens")

        page.fill("#token-new input[name=label]", "crm sync")
        page.select_option("#token-new select[name=user]", "qa")
        page.click("#token-new button[type=submit]")
        page.wait_for_selector("#token-value")
        assert "it is shown this once" in page.inner_text("#token-made")
        page.click("#token-copy")
        expect(page.locator("#token-copied")).to_have_text("Copied.")  # the page's own script said so
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.startswith("ivr_") and copied == page.input_value("#token-value")
        page.locator("#token-made").screenshot(path=str(ARTIFACTS / "token-made.png"))
        assert api_status(base_url, copied) == 200

        page.click("text=Back to the API tokens")
        page.wait_for_url(f"{base_url}/tokens/")
        row = page.locator("#tokens tr.token").first
        assert row.get_attribute("data-state") == "active" and copied not in page.content()
        assert copied[:12] in row.inner_text() and "qa" in row.inner_text() and "crm sync" in row.inner_text()
        row.locator("a.token-revoke").click()
        page.wait_for_selector("#token-revoke-confirm")
        assert "Revoke this token?" in page.inner_text("#token-detail")
        assert api_status(base_url, copied) == 200  # the question revokes nothing
        page.click("#token-revoke-confirm")
        page.wait_for_url(f"{base_url}/tokens/")
        assert "is revoked" in page.inner_text("p.flash.success")
        assert page.locator("#tokens tr.token").first.get_attribute("data-state") == "revoked"
        page.locator("main").screenshot(path=str(ARTIFACTS / "tokens-revoked.png"))
        assert api_status(base_url, copied) == 401
        context.close()
    assert problems == []
