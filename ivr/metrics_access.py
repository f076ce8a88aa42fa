"""Who may read `/metrics` of `ivr serve` and `ivr web`: this host, or whoever sends the token.

The health paths are open to whoever reaches the port (a balancer on another host asks
them, and they say nothing about callers); the metrics are not, when the port is reachable
from other hosts: they are served to a client on the loopback address, and to another client
only with `Authorization: Bearer <token>`, the token being the environment variable
`IVR_METRICS_TOKEN` (read at start, never logged; unset: loopback only). Prometheus sends it
with `authorization: {credentials_file: ...}` in its scrape config.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from typing import Optional

TOKEN_VARIABLE = "IVR_METRICS_TOKEN"


def metrics_token() -> Optional[str]:
    """The token other hosts send for the metrics; None when unset or empty."""
    return os.environ.get(TOKEN_VARIABLE) or None


def is_loopback(address: Optional[str]) -> bool:
    """The client's address is this host's own (127.0.0.0/8, ::1, or IPv4 loopback as IPv6)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def may_read_metrics(address: Optional[str], authorization: Optional[str], token: Optional[str]) -> bool:
    """May the client at `address`, which sent the `Authorization` header `authorization`
    (or none), read the metrics? The token is compared in constant time."""
    if is_loopback(address):
        return True
    if not token or not authorization:
        return False
    scheme, _, sent = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode("utf-8", "replace"), token.encode("utf-8", "replace"))


REFUSED = ("the metrics are served to this host only, or to a client that sends the token of "
           f"{TOKEN_VARIABLE} (Authorization: Bearer)")
