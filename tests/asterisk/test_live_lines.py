"""Several lines on one Asterisk: config.yaml's `lines` map dialled numbers to flows, and
the dialplan `ivr asterisk-config` generates from it hands each call to its own flow.

The test's installation has the repository's flows and these lines:

    "800123456": faq          a number
    "+48221234567": main      a DID with its +
    "_4822199XXXX": faq       a pattern
    default: main             every other number

The test bed loads the dialplan generated from it (its [ivr] context is the installation's
own), and real calls dial each kind of number: by AMI Originate of Local/<number>@ivr, and
the DID by SIPp (an INVITE to sip:+48221234567@...). Each caller listens to its first
prompt and hangs up; the stored call names the flow it ran, and the first prompt it heard
is that flow's.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any, Iterator

import pytest
import yaml

from ivr.testbed.ami_session import AmiSession
from .live_support import Caller, live_installation, serving, wait_for_outcomes
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

LINES = {"800123456": "faq", "+48221234567": "main", "_4822199XXXX": "faq", "default": "main"}
HOLD = 6  # seconds on the line: the first prompt of either flow has begun
# (number dialled, how, the flow it must start, its first prompt)
DIALLED = {
    "number": ("800123456", "ami", "faq", "faq_menu"),
    "did": ("+48221234567", "sipp", "main", "welcome"),
    "pattern": ("48221990001", "ami", "faq", "faq_menu"),
    "other": ("555", "ami", "main", "welcome"),
}


@pytest.fixture(scope="module")
def lines(testbed: "Testbed", tmp_path_factory) -> Iterator[dict[str, Any]]:
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build",
                            str(testbed.config_path.parent / "flows")], capture_output=True, text=True)
    assert built.returncode == 0, f"`ivr prompts build` failed:\n{built.stdout}{built.stderr}"
    config = live_installation(tmp_path_factory.mktemp("lines"), testbed)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["lines"] = LINES
    config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    callers = {kind: Caller(method, f"4822006{i}", f"Line {kind}", hold=HOLD, exten=exten)
               for i, (kind, (exten, method, _, _)) in enumerate(DIALLED.items())}
    with serving(testbed, config) as srv:
        dialplan = testbed.rx("dialplan show ivr")
        with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
            ami.login(testbed.ami_username, testbed.ami_secret)
            for caller in callers.values():
                caller.place(testbed, ami)
        rows = wait_for_outcomes(srv, [c.number for c in callers.values()], timeout=60)
        for caller in callers.values():
            caller.finish(30)
        records = {kind: srv.record(rows[caller.number]["id"]) for kind, caller in callers.items()}
    yield {"records": records, "dialplan": dialplan}
    for record in records.values():
        for recording in record["recordings"]:
            (testbed.recordings_dir / recording["path"]).unlink(missing_ok=True)


@pytest.mark.parametrize("kind", DIALLED)
def test_a_call_to_each_number_starts_in_its_flow(lines, kind):
    exten, method, flow, first_prompt = DIALLED[kind]
    record = lines["records"][kind]
    call = record["call"]
    assert call["flow"] == flow, (kind, call)
    assert record["events"][0]["type"] == "call_started" and record["events"][0]["flow"] == flow
    prompts = [e["prompt"] for e in record["events"] if e["type"] == "prompt"]
    assert prompts[0] == first_prompt
    assert call["outcome"] == "abandoned"  # the caller hung up in the first menu, as planned
    # recorded like any call of the generated dialplan
    [recording] = record["recordings"]
    assert recording["path"].endswith(f"/{call['uniqueid']}.wav")
    if method == "ami":
        assert call["channel"].startswith(f"Local/{exten}@ivr-")


def test_the_loaded_dialplan_has_one_extension_per_line(lines):
    dialplan = lines["dialplan"]
    for number, flow in LINES.items():
        if number != "default":
            assert f"'{number}' =>" in dialplan, dialplan
    assert "/faq)" in dialplan and "/main)" in dialplan
