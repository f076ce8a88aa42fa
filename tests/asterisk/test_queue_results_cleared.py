"""What the engine relies on to read a Queue()'s results and clear them in one round trip,
checked on the real Asterisk 22: GET FULL VARIABLE evaluates its expression left to right,
so `${MEMBERNAME}${SET(MEMBERNAME=)}` answers the agent's name and leaves the variable unset
for the next Queue() of the call; and it does so on a dead channel too (after the caller
hung up, the usual end of a call with an agent).

A stub FastAGI server (not the engine) plays the commands; a SIPp caller hangs up after a
few seconds.
"""

from __future__ import annotations

import socket
import threading

import pytest

from ivr.channels.agi import QUEUE_CLEARED, QUEUE_RESULTS, clearing
from ivr.channels.agi_wire import command, values_expression
from ivr.testbed.sipp import parse_keys, place_call
from .testbed_support import agi_port_nobody_uses

pytestmark = pytest.mark.asterisk


class StubAgi:
    """Sets what a Queue() with an agent and an abandon would leave, waits for the caller to
    hang up, then reads and clears as the engine does, and reads again."""

    def __init__(self, port: int):
        self.replies: list[str] = []
        self.error: BaseException | None = None
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(30)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _ask(self, conn: socket.socket, lines, line: bytes) -> str:
        conn.sendall(line)
        reply = lines.readline().decode().strip()
        self.replies.append(reply)
        return reply

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
            with conn, conn.makefile("rb") as lines:
                conn.settimeout(30)
                while lines.readline().strip():
                    pass  # the environment block
                self._ask(conn, lines, command("SET VARIABLE", "MEMBERNAME", "Agent Old"))
                self._ask(conn, lines, command("SET VARIABLE", "MEMBERINTERFACE", "PJSIP/101"))
                self._ask(conn, lines, command("SET VARIABLE", "ABANDONED", "TRUE"))
                # the caller hangs up: FastAGI's HANGUP line comes unasked
                self.replies.append(lines.readline().decode().strip())
                expression = values_expression(QUEUE_RESULTS) + clearing(QUEUE_CLEARED)
                self._ask(conn, lines, command("GET FULL VARIABLE", expression))
                self._ask(conn, lines, command("GET FULL VARIABLE", values_expression(QUEUE_RESULTS)))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.server.close()


def test_queue_results_are_read_then_cleared_in_one_command_on_a_dead_channel(testbed):
    with agi_port_nobody_uses(testbed) as port:
        stub = StubAgi(port)
        result = place_call(parse_keys("", wait=1.0), port=testbed.sip_port, hold=3, caller_id="48220000009")
        stub.thread.join(20)
    assert stub.error is None, stub.error
    assert result.ok, result.output
    assert stub.replies[:3] == ["200 result=1"] * 3
    assert stub.replies[3] == "HANGUP"
    # QUEUESTATUS and QEHOLDTIME unset here: "", then the values, then nothing appended
    assert stub.replies[4] == "200 result=1 (||TRUE|PJSIP/101|Agent Old)", stub.replies
    assert stub.replies[5] == "200 result=1 (||||)", stub.replies
