"""The same-wire floor: a minimal asyncio FastAGI server that sends, for every call, exactly
the command lines `ivr serve` sent for one recorded call, and reads one reply line to each.
No engine, no events, no database: what the wire and asyncio cost, and nothing else.

    python bench/agi_floor.py COMMANDS_FILE --port N

COMMANDS_FILE holds one AGI command line a line, as `bench/agi_load.py` recorded them from
`ivr serve`; the generator writes it, so the floor follows the engine's commands when they
change. It prints `ready <port>` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path


def load_commands(path: Path) -> list[bytes]:
    """The command lines of the file, each ending in a line feed, ready to write."""
    return [line.encode() + b"\n" for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def serve_call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, commands: list[bytes]) -> None:
    try:
        while (await reader.readline()) not in (b"\n", b""):  # the environment block
            pass
        for line in commands:
            writer.write(line)
            reply = await reader.readline()
            if not reply or reply == b"HANGUP\n":
                break
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve_until_stopped(handler, host: str, port: int) -> None:
    """Listen with `handler` (asyncio streams), say `ready <port>` on stdout, and serve until
    SIGTERM or SIGINT. The peers (agi_peer_panoramisk.py) serve the same way."""
    server = await asyncio.start_server(handler, host, port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


async def main(path: Path, host: str, port: int) -> None:
    commands = load_commands(path)
    await serve_until_stopped(lambda r, w: serve_call(r, w, commands), host, port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commands", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4573)
    args = parser.parse_args()
    asyncio.run(main(args.commands, args.host, args.port))
