"""Call-backs in the QA web app: the call page shows the call-back booked on the call with
each try and the outcome; the dashboard counts the range's call-backs by status and lists
those still to be made, oldest place in line first, for both roles."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from ivr.settings.config import load_config
from ivr.store.callbacks import ANSWERED, BUSY, Booking, CallbackStore
from ivr.store.models import Call
from ivr.web import create_app

from .support import make_installation


def book(ctx, call_id: str, number: str, *, minutes_ago: float, department: str = "sales",
         node: str | None = None) -> int:
    now = dt.datetime.now(dt.timezone.utc)
    with ctx.sessions() as session:
        session.add(Call(id=call_id, flow="main", started_at=now - dt.timedelta(minutes=minutes_ago + 2),
                         outcome="callback", department=department, caller=number))
        session.commit()
    booked = now - dt.timedelta(minutes=minutes_ago)
    return CallbackStore(ctx.engine, owner="engine-1").book(Booking(
        call_id=call_id, number=number, department=department, queue=department,
        place_at=booked - dt.timedelta(minutes=1), booked_at=booked, due_by=booked + dt.timedelta(hours=1),
        schedule="office", max_attempts=2, retry_pause=60, node=node))


def tried(ctx, callback_id: int, *results: str) -> None:
    store = CallbackStore(ctx.engine, owner="engine-1")
    now = dt.datetime.now(dt.timezone.utc)
    for n, result in enumerate(results):
        at = now + dt.timedelta(minutes=2 * n)
        claim = store.claim(callback_id, "turn" if n == 0 else "due", at)
        assert claim is not None
        store.finish(claim.attempt_id, result, at + dt.timedelta(seconds=12), asterisk_reason="5" if result == BUSY else "4",
                     uniqueid=f"1700000100.{n}", channel=f"Local/600100200@testbed-callee-0000000{n};1")


def test_the_call_page_shows_the_call_back_and_every_try(login, ctx):
    callback_id = book(ctx, "1700000100.1", "600100200", minutes_ago=30)
    tried(ctx, callback_id, BUSY, BUSY)
    page = login("qa").get("/calls/1700000100.1").get_data(as_text=True)
    section = page[page.index('id="callbacks"'):]
    assert f'id="callback-{callback_id}-status">failed<' in section
    assert "600100200" in section and "for sales (queue sales)" in section and "2 of 2 tries made" in section
    assert "not answered in 2 tries; the last: busy" in section
    tries = re.findall(r'<tr class="callback-try" data-result="([^"]+)">', section)
    assert tries == ["busy", "busy"]
    assert "an agent was free, nobody ahead" in section and "the promised time came" in section
    assert "1700000100.0" in section and "1700000100.1" in section and "0:12" in section


def test_a_call_without_a_call_back_has_no_such_section(login, ctx):
    with ctx.sessions() as session:
        session.add(Call(id="plain-1", flow="main", started_at=dt.datetime.now(dt.timezone.utc), outcome="answered"))
        session.commit()
    assert 'id="callbacks"' not in login("qa").get("/calls/plain-1").get_data(as_text=True)


def test_the_dashboard_counts_call_backs_and_lists_the_pending_ones(login, ctx):
    done = book(ctx, "cb-done", "600000001", minutes_ago=50)
    tried(ctx, done, ANSWERED)
    failed = book(ctx, "cb-failed", "600000002", minutes_ago=40)
    tried(ctx, failed, BUSY, BUSY)
    book(ctx, "cb-later", "600000004", minutes_ago=10)
    book(ctx, "cb-first", "600000003", minutes_ago=20)
    book(ctx, "cb-support", "600000005", minutes_ago=5, department="support")
    for role in ("qa", "admin"):
        page = login(role).get("/dashboard/?days=7").get_data(as_text=True)
        assert 'data-callbacks-pending="3" data-callbacks-done="1" data-callbacks-failed="1"' in re.sub(r"\s+", " ", page)
        listed = re.findall(r'<a href="/calls/([^"#]+)#callbacks">', page)
        assert listed == ["cb-first", "cb-later", "cb-support"]  # oldest place in line first
    sales = login("qa").get("/dashboard/?days=7&department=sales").get_data(as_text=True)
    assert re.findall(r'<a href="/calls/([^"#]+)#callbacks">', sales) == ["cb-first", "cb-later"]
    assert 'data-callbacks-pending="2"' in re.sub(r"\s+", " ", sales)


def test_no_pending_call_back_says_so(login, ctx):
    page = login("qa").get("/dashboard/").get_data(as_text=True)
    assert 'id="callbacks-none"' in page and 'data-callbacks-pending="0"' in re.sub(r"\s+", " ", page)


def test_a_try_links_the_recording_of_the_call_back(login, ctx):
    from ivr.store.models import Recording

    callback_id = book(ctx, "1700000300.1", "600100200", minutes_ago=30)
    tried(ctx, callback_id, ANSWERED)  # its channel's uniqueid: 1700000100.0
    with ctx.sessions() as session:  # the indexer's orphan: the call-back's recording, named by its uniqueid
        session.add(Recording(id=77, call_id=None, uniqueid="1700000100.0", path="2026-11-24/1700000100.0.wav",
                              size=44, created_at=dt.datetime.now(dt.timezone.utc)))
        session.commit()
    page = login("qa").get("/calls/1700000300.1").get_data(as_text=True)
    assert '<a class="callback-recording" href="/recordings/77/audio?download=1">recording</a>' in page


def test_an_admin_cancels_a_pending_call_back_and_it_is_audited(login, ctx):
    from sqlalchemy import select

    from ivr.store.models import AuditEntry, Callback

    callback_id = book(ctx, "1700000400.1", "600100200", minutes_ago=5)
    qa = login("qa")
    assert "Cancel this call-back" not in qa.get("/calls/1700000400.1").get_data(as_text=True)
    url = f"/calls/1700000400.1/callbacks/{callback_id}/cancel"
    assert qa.post(url, data={"csrf_token": qa.csrf}).status_code == 403
    admin = login("admin")
    assert "Cancel this call-back" in admin.get("/calls/1700000400.1").get_data(as_text=True)
    assert admin.post(url, data={}).status_code in (400, 403)  # no CSRF token: refused
    assert admin.post(f"/calls/1700000400.1/callbacks/{callback_id + 99}/cancel", data={"csrf_token": admin.csrf}).status_code == 404
    done = admin.post(url, data={"csrf_token": admin.csrf}, follow_redirects=True).get_data(as_text=True)
    assert "The call-back is cancelled" in done and f'id="callback-{callback_id}-status">cancelled<' in done
    again = admin.post(url, data={"csrf_token": admin.csrf}, follow_redirects=True).get_data(as_text=True)
    assert "Only a pending call-back can be cancelled" in again
    with ctx.sessions() as session:
        row = session.get(Callback, callback_id)
        assert (row.status, row.note) == ("cancelled", "cancelled by admin")
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "callback_cancel")).all()
        assert (entry.user, entry.call_id) == ("admin", "1700000400.1")


# --- the Asterisk node a call-back is dialled through ----------------------------------------------
def node_of(page: str, callback_id: int) -> str | None:
    found = re.search(rf'<dt>Asterisk node</dt><dd id="callback-{callback_id}-node">(.*?)</dd>', page)
    return re.sub(r"<[^>]+>", "", found.group(1)) if found else None


def test_with_one_asterisk_the_page_names_no_node(login, ctx):
    callback_id = book(ctx, "1700000500.1", "600100200", minutes_ago=5)  # one Asterisk books naming none
    page = login("qa").get("/calls/1700000500.1").get_data(as_text=True)
    assert 'id="callbacks"' in page and "Asterisk node" not in page and node_of(page, callback_id) is None


@pytest.fixture
def two_nodes(tmp_path, users):
    """An installation of two Asterisks (asterisk.nodes pbx-a, pbx-b) and its app, with the users."""
    ami = {"host": "127.0.0.1", "username": "ivr", "secret": "${IVR_AMI_SECRET}"}
    folder = tmp_path / "two-nodes"
    folder.mkdir()
    config = make_installation(folder, asterisk={"agi": {"host": "127.0.0.1", "port": 4573}, "nodes": {
        "pbx-a": {"ami": {**ami, "port": 5038}}, "pbx-b": {"ami": {**ami, "port": 5039}}}})
    app = create_app(load_config(config), testing=True)
    from ivr.web.users import add_user

    for name, password in users.items():
        add_user(app.extensions["ivr"].engine, name, password, name)
    yield app
    app.extensions["ivr"].engine.dispose()


def test_with_several_asterisks_each_call_back_names_the_node_it_is_dialled_through(two_nodes, users):
    from .support import log_in

    ctx = two_nodes.extensions["ivr"]
    own = book(ctx, "cb-b", "600100201", minutes_ago=9, node="pbx-b")
    tried(ctx, own, ANSWERED)
    unnamed = book(ctx, "cb-none", "600100202", minutes_ago=8)  # booked before the nodes were named
    gone = book(ctx, "cb-gone", "600100203", minutes_ago=7, node="pbx-c")  # a node config.yaml no longer lists
    gone_done = book(ctx, "cb-gone-done", "600100204", minutes_ago=6, node="pbx-c")
    tried(ctx, gone_done, ANSWERED)
    client = two_nodes.test_client()
    assert log_in(client, "qa", users["qa"]).status_code == 302

    def node(call_id: str, callback_id: int) -> str | None:
        return node_of(client.get(f"/calls/{call_id}").get_data(as_text=True), callback_id)

    assert node("cb-b", own) == "pbx-b"
    assert node("cb-none", unnamed) == "pbx-a the first node: the call-back was booked naming no node"
    assert node("cb-gone", gone) == "pbx-c not in config.yaml now: the first node, pbx-a, dials its tries"
    assert node("cb-gone-done", gone_done) == "pbx-c not in config.yaml now"  # over: no tries to come


def test_a_call_back_of_a_node_on_a_site_now_of_one_asterisk_still_names_it(login, ctx):
    callback_id = book(ctx, "1700000600.1", "600100200", minutes_ago=5, node="pbx-b")
    page = login("qa").get("/calls/1700000600.1").get_data(as_text=True)
    assert node_of(page, callback_id) == "pbx-b not in config.yaml now: the only Asterisk dials its tries"
