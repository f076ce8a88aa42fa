"""Fakes below the socket for fast tests of `AgiConnection`: a transport that keeps what is
written, and an owner that keeps what the connection told it. (The real socket is in
test_fastagi.py and test_hostile_clients.py, against the real server.)"""

from __future__ import annotations

import asyncio
from typing import Optional

from ivr.channels.agi_connection import AgiConnection
from ivr.channels.agi_wire import AgiEnvironment

BLOCK = (b"agi_network: yes\nagi_network_script: main\nagi_channel: PJSIP/caller-1\nagi_uniqueid: 1700000000.1\n"
         b"agi_callerid: 48221234567\nagi_calleridname: Jan Kowalski\nagi_callingpres: 0\nagi_context: ivr\n\n")


class Transport(asyncio.Transport):
    def __init__(self, connection: Optional[AgiConnection] = None):
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False
        self.aborted = False
        self.connection = connection

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def is_closing(self) -> bool:
        return self.closing


class Owner:
    def __init__(self):
        self.opened: list[AgiConnection] = []
        self.ready: list[AgiEnvironment] = []
        self.refused: list[str] = []

    def connection_opened(self, connection: AgiConnection) -> None:
        self.opened.append(connection)

    def block_received(self, connection: AgiConnection) -> None:
        pass

    def hold(self, connection: AgiConnection, size: int) -> bool:
        return True

    def environment_ready(self, connection: AgiConnection, env: AgiEnvironment) -> None:
        self.ready.append(env)

    def connection_refused(self, connection: AgiConnection, reason: str) -> None:
        self.refused.append(reason)


def connect(owner: Optional[Owner] = None) -> tuple[AgiConnection, Transport, Owner]:
    owner = owner or Owner()
    connection = AgiConnection(owner)
    transport = Transport(connection)
    connection.connection_made(transport)
    return connection, transport, owner


def answer_first(connection: AgiConnection, transport: Transport) -> None:
    """Answer the first command as Asterisk does: the token, echoed."""
    line = transport.written[-1].decode()
    token = line[len('GET FULL VARIABLE "'):].rstrip('"\n')
    connection.data_received(f"200 result=1 ({token})\n".encode())


def open_call() -> tuple[AgiConnection, Transport]:
    """A connection past its environment block and first command: replies go to commands."""
    connection, transport, owner = connect()
    connection.data_received(BLOCK)
    answer_first(connection, transport)
    assert owner.ready and not connection.opening
    return connection, transport
