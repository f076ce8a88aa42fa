"""Runs a compiled Flow on a Channel; knows nothing of sockets, consoles or scripts."""

from ivr.engine.engine import Engine
from ivr.engine.call import Call

__all__ = ["Engine", "Call"]
