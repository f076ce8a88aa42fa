"""Interrupted calls in the QA app: a call left open by an engine that was killed, closed by
the repair of another engine (ivr.store.engines) as interrupted at its last event, is found
by the calls list's outcome filter, counted on the dashboard, and its page says where it
was interrupted and why, with the entry on its timeline."""

from __future__ import annotations

import datetime as dt
import re

from ivr import events as ev
from ivr.store import CallWriter
from ivr.store.engines import EngineRegistry

CALL = "1733300999.42"


def _interrupted_call(db) -> None:
    began = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    dead = EngineRegistry(db, "gone-host:4242:abcdef")
    dead.machine = "gone-host"
    dead.register(began)
    events = [(ev.CALL_STARTED, None, 0.0, {"caller": "48221234567", "language": "pl", "version": "v1",
                                             "at": began.isoformat(), "uniqueid": CALL, "source": "live"}),
              (ev.NODE_ENTERED, "main_menu", 6.7, {"node_type": "menu", "via": "otherwise"}),
              (ev.KEY, "main_menu", 9.0, {"key": "1"}),
              (ev.NODE_ENTERED, "sales", 9.0, {"node_type": "transfer", "via": "1"}),
              (ev.TRANSFER, "sales", 11.5, {"department": "sales", "queue": "sales", "priority": 0})]
    with CallWriter(db, owner=dead.id) as writer:
        for seq, (kind, node, t, data) in enumerate(events):
            writer.submit(ev.Event(CALL, seq, t, kind, "main", node, data))
        assert writer.flush()
    [repaired] = EngineRegistry(db, "here:1:x").repair(began + dt.timedelta(minutes=5))
    assert repaired.calls == 1


def test_an_interrupted_call_in_the_list_the_dashboard_and_its_page(ctx, login):
    _interrupted_call(ctx.engine)
    client = login("qa")

    listed = client.get("/calls/?outcome=interrupted").get_data(as_text=True)
    assert CALL in listed and '<span class="badge interrupted">interrupted</span>' in listed
    assert '<option value="interrupted"' in client.get("/calls/").get_data(as_text=True)  # the outcome filter offers it
    assert CALL not in client.get("/calls/?outcome=answered").get_data(as_text=True)

    dashboard = client.get("/dashboard/").get_data(as_text=True)
    assert re.search(r"<th class=\"num\">interrupted</th>", dashboard), dashboard[:2000]

    page = client.get(f"/calls/{CALL}").get_data(as_text=True)
    fact = re.search(r'<dd id="fact-outcome">(.*?)</dd>', page, re.S).group(1)
    assert fact.startswith("interrupted") and 'id="fact-interrupted"' in fact
    assert "at sales: the engine stopped without ending the call (killed or crashed)" in fact
    assert 'class="tl tl-interrupted"' in page and "Call interrupted: the engine stopped" in page
