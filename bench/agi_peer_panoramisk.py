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
from pathlib import Path

from panoramisk.fast_agi import Application, Request

from agi_floor import load_commands, serve_until_stopped  # the same file, served the same way


async def main(path: Path, host: str, port: int, script: str) -> None:
    commands = [line.decode().rstrip("\n") for line in load_commands(path)]

    async def call(request: Request) -> None:
        for line in commands:
            result = await request.send_command(line)
            if "error" in result:  # the call ends short: the generator counts it as failed
                logging.error("%s -> %s", line, result)
                return

    app = Application()
    app.add_route(script, call)
    await serve_until_stopped(app.handler, host, port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commands", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4573)
    parser.add_argument("--script", default="bench", help="the route: agi_network_script of the calls")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.commands, args.host, args.port, args.script))
