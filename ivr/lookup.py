"""HTTP lookups of caller segments: is this caller premium? asked of another system (a CRM).

config.yaml: `segments: {gold: {lookup: {url: "https://crm.example/vip?number={number}",
timeout: 500ms, answer: json, field: segment, cache: 1m, headers: {...}}}}`.

- The request is one GET of the URL with `{number}` replaced by the caller's number, reduced
  to its digits (and a leading +) and URL-encoded: the caller chooses their caller ID, so
  nothing else of it reaches the URL. A call with no number asks nothing.
- `timeout` bounds the whole request (connect, send, answer), not each step of it.
- `answer: json`: 200 with a JSON object whose `field` is true or false; `answer: status`:
  200 is in the segment. In both, 404 means not in it. Anything else (a time-out, a refused
  connection, another status, a body that is no such JSON, a redirect) is a failure: the
  caller counts as not in the segment and goes the normal path.
- Failures are logged once per spell (the first of a run of failures, as a warning, and the
  first success after them), not once per call; each call records its own on its route
  event (`ivr.engine.lookups`).
- Answers (not failures) are kept for `cache` seconds per number, so a caller who calls
  again, or a flow that asks twice, costs no second request.
- `${NAME}` in the URL or a header value is read from the environment for each request; a
  missing one is a failure like any other. Values are never logged nor stored: the log shows
  the URL as written in config.yaml with its query values and password masked (a `${NAME}` or
  `{number}` stays as written), a value with a control character (a secret file's trailing
  newline) is refused before anything is sent, with a fixed text naming the header, and an
  error that could quote the request is told in fixed words.
- The HTTP client (its connection pool and the CA file it loads) is made by `start()`, when
  the runtime starts, off the event loop: no caller's time-out pays for it.
- The CRM is asked directly: no proxy from the environment (HTTP_PROXY and the like), no
  redirect followed, so what config.yaml says is what is asked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Mapping, Optional
from urllib.parse import quote, urlsplit, urlunsplit

from ivr.engine.lookups import FAILED, MEMBER, NO_NUMBER, NOT_MEMBER, LookupAnswer
from ivr.errors import MissingSecret
from ivr.settings.config import expand_env
from ivr.settings.segments import NUMBER_PLACEHOLDER, Lookup, Segment

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)
# httpx (imported when a lookup is first made: a server whose segments have none does not
# carry it) logs each request's URL at INFO, with the secrets read from the environment in it:
# its loggers (and httpcore's) say warnings only
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

MAX_BODY = 64 * 1024  # an answer to "is this number premium?" is a few bytes; more is garbage
MAX_CACHED = 10_000  # numbers remembered at most, the oldest forgotten first
MAX_DIGITS = 20  # E.164 allows 15; more is no phone number
_NUMBER = re.compile(r"^\s*(\+?)[\d\s().\-/]*$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CR, LF, NUL and the rest; a tab is allowed in HTTP
_KEPT_VALUE = re.compile(r"^(?:\$\{[A-Za-z_][A-Za-z0-9_]*\}|\{number\})$")  # shown as written in the log


def lookup_number(caller: Optional[str]) -> str:
    """The caller's number as sent: digits, with the leading + if there was one; "" when the
    caller ID is no phone number (withheld, a name, too long)."""
    text = caller or ""
    match = _NUMBER.match(text)
    digits = re.sub(r"\D", "", text)
    if not match or not digits or len(digits) > MAX_DIGITS:
        return ""
    return match.group(1) + digits


def lookup_url(lookup: Lookup, number: str, environ: Mapping[str, str] = os.environ) -> str:
    """The URL of one request: `${NAME}`s from the environment, then the number, URL-encoded."""
    return expand_env(lookup.url, environ).replace(NUMBER_PLACEHOLDER, quote(number, safe=""))


def redact_url(url: str) -> str:
    """The URL of config.yaml as the log shows it: query values and the password masked unless
    they are a `${NAME}` or `{number}`, so a secret written into the URL is not logged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that cannot be read)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        if colon and not _KEPT_VALUE.match(password):
            password = "***"
        netloc = f"{user}{colon}{password}@{host}"
    query = "&".join(_redact_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_pair(pair: str) -> str:
    name, equals, value = pair.partition("=")
    if not equals or _KEPT_VALUE.match(value) or value == "":
        return pair
    return f"{name}=***"


def unsendable(url: str, headers: Mapping[str, str]) -> Optional[str]:
    """Why the expanded URL or a header value cannot be sent (a fixed text naming the header,
    never its value), or None: h11 would refuse a control character and quote the value."""
    if _CONTROL.search(url):
        return "the URL has a control character once ${...} is read from the environment"
    for name, value in headers.items():
        if _CONTROL.search(value):
            return f'the header "{name}" has a control character (a line break?) once ${{...}} is read from the environment'
    return None


class HttpLookups:
    """The lookups of every call of a server (or one `ivr simulate`): one connection pool, one
    cache, one failure spell per segment. Shared by the engines of every reload."""

    def __init__(self, *, environ: Mapping[str, str] = os.environ, max_cached: int = MAX_CACHED):
        self.environ = environ
        self.max_cached = max_cached
        self._cache: OrderedDict[tuple[str, Lookup, str], tuple[float, bool]] = OrderedDict()
        self._failing: dict[str, int] = {}  # segment -> failures in the current spell
        self._client: Optional[httpx.AsyncClient] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    async def ask(self, segment: Segment, caller: str) -> LookupAnswer:
        lookup = segment.lookup
        assert lookup is not None, f"segment {segment.name} has no lookup"
        started = time.monotonic()
        number = lookup_number(caller)
        if not number:
            return LookupAnswer(segment.name, NO_NUMBER)
        key = (segment.name, lookup, number)
        kept = self._cache.get(key)
        if kept is not None and kept[0] > started:
            return LookupAnswer(segment.name, MEMBER if kept[1] else NOT_MEMBER, 0, cached=True)
        member: Optional[bool] = None
        await self.start()  # made once, before the time-out runs (the runtime made it at start)
        import httpx  # loaded by start(), in its thread: the event loop never waits for the import
        try:
            async with asyncio.timeout(lookup.timeout):
                member, error = await self._request(lookup, number)
        except TimeoutError:
            error = f"no answer within {round(lookup.timeout * 1000)} ms"
        except MissingSecret as exc:
            error = str(exc)
        # httpx's texts may quote the request (a header's value, the URL with its secrets):
        # below, each failure is told in fixed words or the OS's reason only
        except httpx.InvalidURL:
            error = "the URL is no address once ${...} is read from the environment"
        except httpx.ConnectError as exc:
            error = f"cannot connect: {_reason(exc)}"
        except httpx.TimeoutException:
            error = f"no answer within {round(lookup.timeout * 1000)} ms"
        except httpx.LocalProtocolError:
            error = "the request cannot be sent: HTTP refuses it (a URL or header value from the environment?)"
        except httpx.RemoteProtocolError:
            error = "the answer breaks the HTTP protocol"
        except httpx.HTTPError as exc:
            error = f"the request failed: {type(exc).__name__}"
        except (ValueError, UnicodeError) as exc:  # a header value from the environment that HTTP cannot carry
            error = f"the request cannot be sent: {type(exc).__name__}"
        if member is not None:
            ms = _ms_since(started)
            self._recovered(segment.name)
            if lookup.cache > 0:
                self._remember(key, time.monotonic() + lookup.cache, member)
            return LookupAnswer(segment.name, MEMBER if member else NOT_MEMBER, ms)
        error = error or "no reason"
        self._failed(segment.name, lookup, error)
        return LookupAnswer(segment.name, FAILED, _ms_since(started), error)

    async def _request(self, lookup: Lookup, number: str) -> tuple[Optional[bool], Optional[str]]:
        """(in the segment, None) for an answer; (None, why) for one that says nothing."""
        url = lookup_url(lookup, number, self.environ)
        headers = {name: expand_env(value, self.environ) for name, value in lookup.headers}
        refused = unsendable(url, headers)
        if refused is not None:
            return None, refused
        async with self._pool().stream("GET", url, headers=headers, timeout=lookup.timeout) as response:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    return None, f"the answer is longer than {MAX_BODY // 1024} KiB"
        return read_answer(lookup, response.status_code, body)

    async def start(self) -> None:
        """Makes the client of this event loop now, in a thread (it reads the CA file, tens of
        ms), so that the first caller's time-out does not pay for it. Again on the same loop:
        nothing to do."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is loop:
            return
        client = await asyncio.to_thread(_new_client)
        if self._client is not None and self._loop is loop:  # made meanwhile by a call
            await client.aclose()
            return
        await self._drop_client()
        self._client, self._loop = client, loop

    def _pool(self) -> httpx.AsyncClient:
        # one pool per event loop: `ivr simulate` and tests run several loops one after another;
        # the runtime made it in start(), so this makes one only where no start() came first
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = _new_client()
            self._loop = loop
        return self._client

    async def _drop_client(self) -> None:
        """Closes the client of this loop; forgets one of a loop gone (its sockets went with it)."""
        if self._client is not None and self._loop is asyncio.get_running_loop():
            client, self._client = self._client, None
            await client.aclose()
        self._forget_client()

    def _forget_client(self) -> None:
        # a client of another loop: that loop has ended (asyncio.run closes it) and its
        # connections with it; it cannot be closed from this one
        self._client, self._loop = None, None

    def _remember(self, key: tuple[str, Lookup, str], until: float, member: bool) -> None:
        self._cache[key] = (until, member)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)

    def _failed(self, name: str, lookup: Lookup, error: str) -> None:
        count = self._failing.get(name, 0) + 1
        self._failing[name] = count
        if count == 1:
            log.warning('segment "%s": lookup %s failed (%s); callers go the normal path until it answers again',
                        name, redact_url(lookup.url), error)
        else:
            log.debug('segment "%s": lookup failed again (%s)', name, error)

    def _recovered(self, name: str) -> None:
        count = self._failing.pop(name, 0)
        if count:
            log.warning('segment "%s": lookup answers again, after %d failed lookup(s)', name, count)

    async def close(self) -> None:
        await self._drop_client()


def _new_client() -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(trust_env=False, follow_redirects=False,
                             headers={"User-Agent": "ivr-engine segment lookup"})


def read_answer(lookup: Lookup, status: int, body: bytes) -> tuple[Optional[bool], Optional[str]]:
    """(whether an HTTP answer puts the caller in the segment, None), or (None, why it says nothing)."""
    if status == 404:
        return False, None
    if lookup.answer == "status":
        return (True, None) if status == 200 else (None, f"HTTP {status}")
    if status != 200:
        return None, f"HTTP {status}"
    try:
        data: Any = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "the answer is no JSON"
    value = data.get(lookup.answer_field) if isinstance(data, dict) else None
    if not isinstance(value, bool):
        return None, f'the answer has no "{lookup.answer_field}": true or false'
    return value, None


def _reason(exc: BaseException) -> str:
    """The innermost cause in words: "Connection refused" rather than httpx's wrapping."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno)  # asyncio's "Connect call failed (...)" says less
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror  # "Name or service not known", without the host
    return type(exc).__name__  # the text of anything else might quote the request


def _ms_since(started: float) -> int:
    return int(round((time.monotonic() - started) * 1000))
