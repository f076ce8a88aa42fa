"""What one YAML file may cost to read and check: its size, its values, its nesting, time.

Flow files, journey test files and config.yaml are written by admins, but a file can also
come from a careless generator, a bad merge or someone hostile, and `ivr serve` reloads
whatever is saved into flows/. Without limits a 1 kB file of aliases of aliases ("a
billion laughs") expands to a billion values when the checks walk it, and a 50 MB file
takes minutes and gigabytes; either would stall `ivr validate`, every reload, and every
flow in the same folder (siblings are read for their goto targets).

Each limit is sized from the compile benchmark's flow (bench/compile_bench.py: 10,000
nodes, 2.9 MB, some 197,000 keys and values, read and checked in about a second), with
room to spare: a real customer line has tens to hundreds of nodes. A file over a limit
is refused with one finding that names it, where the limit was crossed when there is a
place, and the limit; nothing of it is checked further. (The flow format adds its own
limit, on the nodes of a flow: `ivr.flow.checks.MAX_NODES`.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The limits of one file. The defaults (`DEFAULT`) are the project's; tests lower them."""

    # bytes on disk, checked before reading: 2.7 times the 10,000-node benchmark flow
    max_bytes: int = 8_000_000
    # keys and values (scalars, lists, mappings), each alias counted as everything it
    # stands for: what the checks walk. 3 times the benchmark flow's 197,000
    max_values: int = 600_000
    # lists and mappings inside each other, aliases expanded; a flow needs 6 (nodes, a
    # node, options, an option, set, a variable). Python code that walks the data
    # recursively stays far from its recursion limit (1,000)
    max_depth: int = 64
    # to read one file, and again to check it (a folder's files are all read before any is
    # checked, so each step has its own); a backstop for costs the counts above do not
    # bound. The benchmark flow takes about half a second for each on a busy 2-core machine
    max_seconds: float = 10.0


DEFAULT = Limits()


def deadline(limits: Limits) -> float:
    """The moment (time.monotonic) by which a step started now (reading, checking) must end."""
    return time.monotonic() + limits.max_seconds


def size_text(size: float) -> str:
    """1536 -> '1.5 kB', 52428800 -> '52.4 MB' (decimal units, as `ls -lh --si`)."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["Limits", "DEFAULT", "deadline", "size_text"]
