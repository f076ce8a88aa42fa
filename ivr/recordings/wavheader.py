"""Whether a WAV file's header agrees with its size: is the file finished?

Asterisk's MixMonitor writes the RIFF and data sizes into the header only when it
closes the file; while a call is recorded they say 0 (or what an earlier flush said).
A header whose sizes fit the file is the sign the writer is done with it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HEADER_BYTES = 1 << 16  # the data chunk starts within this (a LIST chunk of tags may come first)


class NotWav(ValueError):
    """The file is no RIFF/WAVE file, or its chunks are broken before the audio starts."""


@dataclass(frozen=True)
class WavLayout:
    file_size: int
    riff_size: int  # what the RIFF header says follows its first 8 bytes
    data_offset: int  # where the audio starts
    data_size: int  # what the data chunk's header says

    @property
    def finished(self) -> bool:
        """The header's sizes fit the file (as its writer leaves it when it closes it)."""
        return self.riff_size + 8 == self.file_size and self.data_offset + self.data_size <= self.file_size

    @property
    def mismatch(self) -> Optional[str]:
        """Why the header does not fit the file, or None."""
        if self.finished:
            return None
        return (f"the WAV header says {self.data_size} bytes of audio in a {self.riff_size + 8}-byte file, "
                f"but the file holds {self.file_size} bytes")


def read_layout(path: Path) -> WavLayout:
    """The sizes in `path`'s RIFF header; NotWav if it has none, OSError if unreadable."""
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
        file_size = f.seek(0, 2)
    return parse_layout(head, file_size)


def parse_layout(head: bytes, file_size: int) -> WavLayout:
    """The layout from the first bytes of a file of `file_size` bytes."""
    if len(head) < 12:
        raise NotWav("empty file" if not head else f"too short for a WAV header ({len(head)} bytes)")
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise NotWav("no RIFF/WAVE header")
    riff_size = struct.unpack_from("<I", head, 4)[0]
    pos = 12
    while pos + 8 <= len(head):
        name, size = head[pos:pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if name == b"data":
            return WavLayout(file_size, riff_size, pos + 8, size)
        if not name.isascii() or not name.strip(b" ").isalnum():
            raise NotWav(f"broken chunk {name!r} at byte {pos}")
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    if pos + 8 > file_size:
        raise NotWav("no data chunk (the header is cut short)")
    raise NotWav(f"no data chunk in the first {HEADER_BYTES} bytes")
