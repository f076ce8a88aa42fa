"""The CRM feed on real calls: the test bed's Asterisk 22, `ivr serve` as a process (as the
README starts it) with `crm.webhook` pointed at a real HTTP receiver of this test
(tests/webhook_receiver.py), two calls placed together (one by AMI, one by SIPp with RFC
4733 DTMF), both hanging up in the language menu. The receiver gets each call once, signed
with the shared secret, with the caller, the outcome and the recording the call's record
has; the outbox says delivered."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
import yaml

from ivr.settings.config import load_config
from ivr.store.db import create_db_engine
from ivr.store.models import Call, Recording, WebhookDelivery
from ivr.testbed.ami_session import AmiSession
from ivr.testbed.server import REPO
from .live_support import Caller, live_installation, serve_process
from .testbed_support import IVR

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from webhook_receiver import WebhookReceiver  # noqa: E402

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

SECRET = "live-webhook-secret-0123456789abcdef"
CALLERS = [Caller("ami", "482200951", "Webhook AMI", keys="", hold=8),
           Caller("sipp", "482200952", "Webhook SIP", keys="", hold=8)]


def test_real_calls_reach_the_crm_webhook_once_each_signed(testbed: "Testbed", tmp_path, monkeypatch):
    monkeypatch.setenv("IVR_WEBHOOK_SECRET", SECRET)
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build"],
                           capture_output=True, text=True, cwd=REPO)
    assert built.returncode == 0, f"`ivr prompts build` failed:\n{built.stdout}{built.stderr}"
    config_path = live_installation(tmp_path, testbed)
    (tmp_path / "flows").symlink_to(REPO / "flows", target_is_directory=True)
    recordings_before = set(testbed.recordings_dir.glob("*/*.wav"))
    with WebhookReceiver(SECRET) as crm:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        raw["crm"] = {"webhook": {"url": crm.url, "secret": "${IVR_WEBHOOK_SECRET}", "timeout": "2s"}}
        config_path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
        try:
            with serve_process(testbed, config_path, tmp_path / "serve.log"):
                began = time.monotonic()
                with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
                    ami.login(testbed.ami_username, testbed.ami_secret)
                    for caller in CALLERS:
                        caller.place(testbed, ami)
                crm.wait(lambda r: len(r.accepted) == len(CALLERS), 60, "both calls")
                took = time.monotonic() - began
                for caller in CALLERS:
                    caller.finish(30)
                time.sleep(0.5)  # a repeat, if there were one, would come now
        finally:
            for path in set(testbed.recordings_dir.glob("*/*.wav")) - recordings_before:
                path.unlink(missing_ok=True)

    print(f"\nboth calls in the CRM {took:.1f} s after they were placed")
    db = create_db_engine(load_config(config_path).raw["database"])
    try:
        with db.connect() as conn:
            stored = {r["caller"]: dict(r) for r in conn.execute(sa.select(Call.__table__)).mappings()}
            files = dict(conn.execute(sa.select(Recording.call_id, Recording.path)).all())
            outbox = conn.execute(sa.select(WebhookDelivery.call_id, WebhookDelivery.attempts,
                                            WebhookDelivery.delivered_at)).all()
    finally:
        db.dispose()
    assert crm.repeats == 0 and len(crm.tries) == len(CALLERS) and all(t.signed for t in crm.tries)
    received = {call["caller"]["number"]: call for call in crm.calls().values()}
    assert set(received) == {c.number for c in CALLERS} == set(stored)
    for caller in CALLERS:
        call, row = received[caller.number], stored[caller.number]
        assert call["caller"]["name"] == caller.name and call["uniqueid"] == row["uniqueid"]
        assert call["outcome"] == row["outcome"] == "abandoned"
        assert call["last_node"] == {"flow": "main", "node": row["last_node"]} and row["last_node"] == "language"
        assert [step["node"] for step in call["path"]][0] == "welcome"
        assert call["recording"]["path"] == files[row["id"]] and files[row["id"]].endswith(f"/{row['uniqueid']}.wav")
    assert sorted((a, d is not None) for _, a, d in outbox) == [(1, True), (1, True)]
