"""A peer for the load generator: pyst2's `asterisk.agi.AGI` as Asterisk runs a plain AGI
script, a new process for every call, speaking on stdin (the environment block, then the
replies) and stdout (the commands). It sends the command lines `ivr serve` sent for one
recorded call, through `AGI.execute`, then exits.

    python bench/agi_peer_pyst2.py COMMANDS_FILE     (started by bench/agi_load.py per call)

pyst2 writes a trace of every line to stderr (Asterisk's verbose log); it goes to
/dev/null here, as the generator does not read it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(path: Path) -> int:
    from asterisk.agi import AGI, AGIError  # imported per process: part of what a process per call costs

    commands = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(os.devnull, "w") as trace:
        agi = AGI(stderr=trace)
        for line in commands:
            try:
                agi.execute(line)
            except AGIError as exc:
                print(f"{line} -> {exc!r}", file=sys.__stderr__)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
