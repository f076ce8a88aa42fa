"""A peer for the load generator: panoramisk's FastAGI application (`panoramisk.fast_agi`)
sending, for every call, the command lines `ivr serve` sent for one recorded call, through
its `Request.send_command` API. Its own process, like `ivr serve` and the floor.

    python bench/agi_peer_panoramisk.py COMMANDS_FILE --port N [--script bench]

It prints `ready <port>` on stdout once it listens. panoramisk reads the environment block
in 100-byte pieces and parses each reply with its own regular expressions; it never reads
past a reply line, so it stays in step with the replies the generator sends (which are all
single-line `200` replies: its off-by-one after a `HANGUP` line or a multi-line 520 never
comes up). A connection closed before the blank line would spin its reader for ever
(`read()` answers b"" in a loop), so nothing probes its port: the generator waits for
`ready` on its output instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from panoramisk.fast_agi import Application, Request


def load_commands(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def main(path: Path, host: str, port: int, script: str) -> None:
    commands = load_commands(path)

    async def call(request: Request) -> None:
        for line in commands:
            result = await request.send_command(line)
            if "error" in result:  # the call ends short: the generator counts it as failed
                logging.error("%s -> %s", line, result)
                return

    app = Application()
    app.add_route(script, call)
    server = await asyncio.start_server(app.handler, host, port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commands", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4573)
    parser.add_argument("--script", default="bench", help="the route: agi_network_script of the calls")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.commands, args.host, args.port, args.script))
