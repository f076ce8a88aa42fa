"""`ivr call` presses real RFC 4733 keys that Asterisk delivers over FastAGI. A stub
FastAGI server (not the engine: it only reads the environment and waits for digits) sits
on the dialplan's AGI port; repeated and descending keys must all arrive."""

from __future__ import annotations

import socket
import threading

import pytest

from ivr.asterisk.dialplan import channel_language
from ivr.testbed.sipp import parse_keys, place_call
from .testbed_support import agi_port_nobody_uses

pytestmark = pytest.mark.asterisk


class StubAgi:
    """Accepts one FastAGI call; WAIT FOR DIGIT `digits` times; then HANGUP."""

    def __init__(self, port: int, digits: int):
        self.digits, self.env, self.replies = digits, {}, []
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.server.settimeout(30)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as lines:
            conn.settimeout(30)
            while (line := lines.readline().decode().strip()):
                name, _, value = line.partition(": ")
                self.env[name] = value
            for _ in range(self.digits):
                conn.sendall(b"WAIT FOR DIGIT 15000\n")
                self.replies.append(lines.readline().decode().strip())
            conn.sendall(b"HANGUP\n")
            lines.readline()
        self.server.close()


def test_repeated_and_descending_keys_all_reach_the_agi_server(testbed):
    with agi_port_nobody_uses(testbed) as port:
        stub = StubAgi(port, digits=4)
        # the first key 3 s after the answer: the stub must have asked for it by then (the
        # dialplan's start and the stub's thread in this busy process come first); the others
        # 1.5 s apart, each long after the stub asked again
        result = place_call(parse_keys("1.5s 2 1 1 #", wait=1.5), port=testbed.sip_port, hold=5,
                            caller_id="48220000003", caller_name='A "Quote" Test')
        stub.thread.join(10)
    assert result.ok, result.output
    assert stub.replies == ["200 result=50", "200 result=49", "200 result=49", "200 result=35"]
    assert stub.env["agi_network_script"] == "main"
    assert stub.env["agi_callerid"] == "48220000003"
    assert stub.env["agi_calleridname"] == 'A \\"Quote\\" Test'
    assert stub.env["agi_language"] == channel_language(testbed.config)
    assert stub.env["agi_context"] == "ivr" and stub.env["agi_extension"] == "100"
