"""The AMI client of the live runtime: queue events, call-backs and recording mutes.

Built on panoramisk's `Manager` (asyncio, AMI parsing, ActionID-matched answers), with the
connection's life and the events' dispatch run here instead of by panoramisk, because its
defaults do not suit a call centre:

- panoramisk replays actions that were in flight when a connection dropped; here they
  fail with `AmiConnectionLost` (see `ami_wire.AmiProtocol`): an `Originate` is never sent
  twice, so no customer gets two call-backs.
- panoramisk sends a Ping every 10 s but never looks for the answer; here a Ping that
  gets no answer within `ping_timeout` seconds marks the connection dead, and it is
  aborted and made again. A half-open TCP connection (Asterisk frozen, a NAT dropped the
  flow) is found within `ping_interval + ping_timeout` seconds.
- panoramisk reconnects at a fixed whole-second interval, logs in without telling anyone
  that the secret was refused, and keeps pinging a connection that never logged in; here
  reconnects back off exponentially (capped, with jitter), a refused login is an
  `AmiLoginError` on `start()` (and an error in the log on a reconnect, retried), and
  every login is followed by a RE-SYNC: QueueStatus and CoreShowChannels, applied to the
  queue tracker and handed to `on_resync(queues, channels)`, so calls that moved while
  the connection was down are reconciled.
- The live queue board (`ivr.asterisk.queue_board`) is kept from the queue events, seeded
  by that QueueStatus and refreshed by another every `queue_refresh` seconds, so a missed
  event heals; while the connection is down the board says it is not fresh.
- Only the events the engine reads are wanted (`ivr.asterisk.event_filter`): each login
  asks for a session filter of them (`Filter` actions; Asterisk grants it only to a user
  with the `system` class, so for the generated user manager.conf's eventfilter lines do
  it). Events are dispatched by name in one look-up (panoramisk matches every event
  against a pattern per registered name), and whatever Asterisk sends that the engine does
  not read is counted (`events_unused`) and reported once in the log: a user without the
  filter makes the engine parse every channel's events of every call for nothing.

The secret is only ever written to the socket, never to a log or an exception message.

Call-backs (`call_back`, the one way to originate: it waits for the OriginateResponse)
follow the dialplan contract in `ivr.asterisk.callback`. A refusal (Asterisk's Error, or a
number or queue refused before sending) is an `AmiRefused`; when the Originate's reply does
not come in time, Asterisk may have taken it all the same, so its OriginateResponse is still
awaited until the ring time and a margin are over: a late answer still finishes the try.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

from panoramisk import Manager
from panoramisk.message import Message

from ivr.asterisk.ami_wire import AmiProtocol, check_queue
from ivr.asterisk.callback import OriginateOutcome, attempt_result, originate_headers
from ivr.asterisk.event_filter import EVENTS as READ_EVENTS
from ivr.asterisk.event_filter import filter_actions
from ivr.asterisk.queue_board import QueueBoard
from ivr.asterisk.queue_tracker import QueueEventSink, QueueFacts, QueueTracker
from ivr.clock import Clock, SystemClock
from ivr.errors import AmiConnectionLost, AmiError, AmiLoginError, AmiRefused
from ivr.settings.asterisk import AsteriskSettings, CallbackSettings

log = logging.getLogger(__name__)

RESYNC_RETRY_CAP = 5.0  # seconds between tries of a failed re-sync, at most (Asterisk boots in seconds)
_READS = frozenset(READ_EVENTS)
# sent to every new session before its Filter actions can be in force: not a sign that the
# user lacks the event filter
_GREETING = "FullyBooted"

__all__ = ["AmiClient", "QueueState", "backoff_delay"]

@dataclass
class QueueState:
    """One queue in a QueueStatus answer."""

    name: str
    params: dict[str, str] = field(default_factory=dict)  # QueueParams: Calls, Holdtime, Completed, ...
    members: list[dict[str, str]] = field(default_factory=list)  # QueueMember events
    entries: list[dict[str, str]] = field(default_factory=list)  # QueueEntry events: callers waiting now


ResyncSink = Callable[[dict[str, QueueState], list[dict[str, str]]], Any]
Reply = Union[Message, list[Message]]


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before reconnect attempt `attempt` (0-based): base·2^attempt, capped, then
    between half and all of that at random, so many engines do not reconnect in step."""
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    return ceiling * rng.uniform(0.5, 1.0)


def _headers(message: Message) -> dict[str, Any]:
    """An AMI message's headers as a plain dict, in AMI spelling (panoramisk adds `content`)."""
    return {k: v for k, v in message.items() if k != "content"}


def _accepted(reply: Reply) -> bool:
    return isinstance(reply, Message) and reply.success


def _reason(reply: Reply) -> str:
    return (reply.get("Message") if isinstance(reply, Message) else None) or "no reason given"


def _event_list(reply: Reply, action: str) -> list[Message]:
    """The messages of an event-list answer; AmiError if Asterisk refused the action."""
    if isinstance(reply, list):
        return reply
    if not reply.success:
        raise AmiError(f"{action} failed: {reply.get('Message') or 'no reason given'}")
    return [reply]


def _run_sink(sink: Callable[..., Any], *args: Any, what: str, tasks: set) -> None:
    try:
        result = sink(*args)
    except Exception:  # noqa: BLE001 - a failing sink must not stop the AMI client
        log.exception("%s failed", what)
        return
    if inspect.isawaitable(result):
        task = asyncio.ensure_future(result)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(lambda t: _log_failure(t, what))


def _log_failure(task: "asyncio.Future", what: str) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed: %r", what, task.exception())


class _Manager(Manager):
    """panoramisk's Manager with the connection's life left to AmiClient: no login of its
    own, no blind pinger, no replay on FullyBooted, no self-scheduled reconnect; every
    event goes to AmiClient, none through panoramisk's callbacks (its replay of awaiting
    actions on FullyBooted among them)."""

    def __init__(self, client: "AmiClient", **config: Any):
        super().__init__(protocol_factory=AmiProtocol, ping_delay=10 ** 6, ping_interval=10 ** 6, **config)
        self.client = client

    def dispatch(self, event: Message) -> list:
        self.client._event(event)
        return []

    def connection_made(self, f: "asyncio.Future") -> None:
        if f.cancelled() or f.exception() is not None:
            return  # AmiClient sees the failure where it awaits the connection
        if self.pinger is not None:
            self.pinger.cancel()
        super().connection_made(f)

    def ping(self) -> None:  # AmiClient's watchdog pings, and waits for the answer
        pass

    def protocol_lost(self, protocol: AmiProtocol, exc: Optional[BaseException]) -> None:
        self._connected = False
        self.client._lost(protocol, exc)

    def connection_lost(self, exc: Optional[BaseException]) -> None:  # pragma: no cover - AmiProtocol calls protocol_lost
        self._connected = False


class AmiClient:
    """One logged-in AMI connection, kept alive: queue events, call-backs and recording mutes."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        on_queue_event: Optional[QueueEventSink] = None,
        on_resync: Optional[ResyncSink] = None,
        callback: Optional[CallbackSettings] = None,
        events: str = "call,agent",
        ping_interval: float = 10.0,
        ping_timeout: float = 5.0,
        action_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        queue_refresh: float = 15.0,
        clock: Optional[Clock] = None,
        rng: Optional[random.Random] = None,
    ):
        self.host, self.port, self.username = host, int(port), username
        self._secret = secret
        self.on_resync = on_resync
        self.callback = callback or CallbackSettings()
        self.events = events
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.action_timeout, self.connect_timeout = action_timeout, connect_timeout
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.tracker = QueueTracker(on_queue_event)
        self.queue_refresh = queue_refresh
        # a board older than three refreshes missed at least two: it no longer vouches for itself
        self.board = QueueBoard(self.clock, max_age=max(3 * queue_refresh, 30.0))
        self.connections = 0  # successful logins so far
        # AMI events by whether the engine reads them: with the event filter in force
        # (manager.conf or the session's), Asterisk sends no unused one
        self.events_read = 0
        self.events_unused = 0
        self.session_filtered: Optional[bool] = None  # did Asterisk take the last login's Filter actions?
        self._filter_settled = False  # the current connection's Filter actions are answered
        self._unused_reported = False
        self.reconnect_delays: deque[float] = deque(maxlen=100)  # the back-off waits, newest last
        self._manager: Optional[_Manager] = None
        self._protocol: Optional[AmiProtocol] = None
        self._down = asyncio.Event()
        self._up = asyncio.Event()
        self._closing = False
        self._supervisor: Optional[asyncio.Task] = None
        self._watchdog: Optional[asyncio.Task] = None
        self._refresher: Optional[asyncio.Task] = None
        self._resync_retry: Optional[asyncio.Task] = None  # a failed re-sync, tried again
        self._tasks: set[asyncio.Task] = set()
        self._call_backs: dict[str, asyncio.Future] = {}  # ActionID -> its OriginateResponse, for call_back()

    def __repr__(self) -> str:  # no secret
        return f"<AmiClient {self.username}@{self.host}:{self.port} {'up' if self.connected else 'down'}>"

    @classmethod
    def from_settings(cls, settings: AsteriskSettings, **kwargs: Any) -> "AmiClient":
        """From config.yaml's `asterisk:` section (`ami` and `callback`); the secret is read
        from the environment now (MissingSecret when it is not there)."""
        from ivr.settings.config import expand_env

        ami = settings.ami
        if ami is None:
            raise AmiError("config.yaml has no asterisk.ami section")
        return cls(ami.host, ami.port, ami.username, expand_env(ami.secret), callback=settings.callback, **kwargs)

    # --- life ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._protocol is not None and not self._protocol.closed

    async def start(self) -> None:
        """Connect, log in and re-sync; then keep the connection up until `close()`.

        Raises AmiLoginError if Asterisk refuses the credentials and AmiError if it cannot
        be reached: a first connection that fails is the operator's to fix.
        """
        if self._supervisor is not None:
            raise AmiError("the AMI client is already started")
        self._closing = False
        self._manager = _Manager(self, host=self.host, port=self.port, loop=asyncio.get_running_loop(),
                                 log=logging.getLogger("panoramisk.manager"))
        await self._connect()
        self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")
        self._refresher = asyncio.create_task(self._refresh_queues(), name="ami-queue-refresh")
        await self._resync_logged()

    async def wait_connected(self, timeout: Optional[float] = None) -> None:
        await asyncio.wait_for(self._up.wait(), timeout)

    async def close(self) -> None:
        self._closing = True
        self.board.connection_lost()
        for task in (self._supervisor, self._watchdog, self._refresher, self._resync_retry):
            if task is not None:
                task.cancel()
        for task in (self._supervisor, self._watchdog, self._refresher, self._resync_retry):
            if task is not None:
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception:  # noqa: BLE001 - it failed before it was stopped: say so, and close all the same
                    log.exception("AMI: %s failed", task.get_name())
        self._supervisor = self._watchdog = self._refresher = self._resync_retry = None
        if self._manager is not None:
            self._manager.close()
        self._protocol = None
        self._up.clear()

    async def _connect(self) -> None:
        """One connection and login; AmiError (AmiLoginError) if either fails."""
        assert self._manager is not None
        where = f"{self.host}:{self.port}"
        self._filter_settled = False
        try:
            _transport, protocol = await asyncio.wait_for(self._manager.connect(), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise AmiError(f"cannot reach the AMI at {where}: {exc or 'time-out'}") from None
        # panoramisk's done-callback (connection_made) ran before this line: it set up the protocol
        assert self._manager.protocol is protocol
        try:
            reply = await self._send_on(protocol, {"Action": "Login", "Username": self.username,
                                                   "Secret": self._secret, "Events": self.events})
        except AmiError:
            protocol.transport.abort()
            raise
        if not isinstance(reply, Message) or not reply.success:
            protocol.transport.abort()
            reason = reply.get("Message") if isinstance(reply, Message) else None
            raise AmiLoginError(f"the AMI at {where} refused user {self.username!r}: "
                                f"{reason or 'no reason given'} (check asterisk.ami in config.yaml and manager.conf)")
        if protocol.closed:
            raise AmiConnectionLost(f"the AMI at {where} closed the connection after the login")
        try:
            self.session_filtered = await self._filter_session(protocol)
        except AmiError:
            protocol.transport.abort()
            raise
        self._filter_settled = True
        self._protocol = protocol
        self._down.clear()
        self._up.set()
        self.connections += 1
        self._watchdog = asyncio.create_task(self._watch(protocol), name="ami-watchdog")
        log.info("AMI: logged in to %s as %s (connection %d)", where, self.username, self.connections)

    async def _filter_session(self, protocol: AmiProtocol) -> bool:
        """Filter actions that narrow this session to the events the engine reads; False
        when Asterisk refuses them (a user without the `system` class: manager.conf's
        eventfilter lines, where the site has them, narrow the events instead).

        AmiError when Asterisk takes some of them and refuses others: the session would then
        be sent only some of the events the engine needs."""
        first, *rest = filter_actions()
        reply = await self._send_on(protocol, first)
        if not _accepted(reply):
            log.debug("AMI: the session's event filter was refused (%s); manager.conf's eventfilter is relied on",
                      _reason(reply))
            return False
        for headers, answer in zip(rest, await asyncio.gather(*(self._send_on(protocol, h) for h in rest))):
            if not _accepted(answer):
                raise AmiError(f"the AMI at {self.host}:{self.port} took some of the session's event filters but "
                               f"refused {headers['MatchCriteria']}: {_reason(answer)}")
        log.info("AMI: this session is sent only the %d events the engine reads (Filter)", len(READ_EVENTS))
        return True

    def _lost(self, protocol: AmiProtocol, exc: Optional[BaseException]) -> None:
        if protocol is not self._protocol:
            return  # a connection that never logged in, or an old one
        self._protocol = None
        self.board.connection_lost()
        self._up.clear()
        self._down.set()
        if not self._closing:
            log.warning("AMI: connection to %s:%s lost%s", self.host, self.port, f" ({exc})" if exc else "")

    async def _supervise(self) -> None:
        while not self._closing:
            await self._down.wait()
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
            attempt = 0
            while not self._closing:
                delay = backoff_delay(attempt, self.backoff_base, self.backoff_cap, self.rng)
                self.reconnect_delays.append(delay)
                attempt += 1
                log.info("AMI: reconnecting to %s:%s in %.2f s (attempt %d)", self.host, self.port, delay, attempt)
                await asyncio.sleep(delay)
                try:
                    await self._connect()
                except AmiLoginError as exc:
                    log.error("AMI: %s", exc)
                    continue
                except AmiError as exc:
                    log.warning("AMI: %s", exc)
                    continue
                await self._resync_logged()
                break

    async def _watch(self, protocol: AmiProtocol) -> None:
        """Ping every `ping_interval` s; no answer within `ping_timeout` s: the line is dead."""
        while not protocol.closed:
            await asyncio.sleep(self.ping_interval)
            if protocol.closed:
                return
            try:
                await self._send_on(protocol, {"Action": "Ping"}, timeout=self.ping_timeout)
            except AmiConnectionLost:
                return
            except AmiError:
                log.warning("AMI: no answer to Ping within %.1f s; dropping the connection to %s:%s",
                            self.ping_timeout, self.host, self.port)
                protocol.transport.abort()  # connection_lost follows; the supervisor reconnects
                return

    # --- actions -------------------------------------------------------------------------
    async def _send_on(self, protocol: AmiProtocol, headers: Mapping[str, Any], *,
                       timeout: Optional[float] = None, as_list: Optional[bool] = None) -> Reply:
        action = protocol.submit(headers, as_list=as_list)
        name = headers.get("Action")
        try:
            return await asyncio.wait_for(asyncio.shield(action.future), timeout or self.action_timeout)
        except asyncio.TimeoutError:
            protocol.forget(action)
            if not action.future.done():
                action.future.cancel()
            raise AmiError(f"no answer to {name} within {timeout or self.action_timeout:g} s; it is not sent again"
                           " (it may or may not have been carried out)") from None

    async def send_action(self, action: str, headers: Optional[Mapping[str, Any]] = None, *,
                          timeout: Optional[float] = None, as_list: Optional[bool] = None) -> Reply:
        """Send one action and return its answer (a list for event-list actions).

        Raises AmiConnectionLost when not connected or when the connection drops before
        the answer; the action is never sent again by this client.
        """
        protocol = self._protocol
        if protocol is None or protocol.closed:
            raise AmiConnectionLost(f"not connected to the AMI at {self.host}:{self.port}; {action} was not sent")
        return await self._send_on(protocol, {"Action": action, **(headers or {})}, timeout=timeout, as_list=as_list)

    async def mute(self, channel: str, muted: bool) -> None:
        """Mute (or unmute) the caller's side of the channel's MixMonitor
        recording; prompts stay in the recording, so QA still hears what the caller heard."""
        reply = await self.send_action("MixMonitorMute", {"Channel": channel, "Direction": "read",
                                                          "State": "1" if muted else "0"})
        if not isinstance(reply, Message) or not reply.success:
            reason = reply.get("Message") if isinstance(reply, Message) else "no answer"
            raise AmiError(f"MixMonitorMute on {channel!r} failed: {reason}")

    async def call_back(self, number: str, department_queue: str, *, priority: Optional[int] = None,
                        caller_id: Optional[str] = None, action_id: Optional[str] = None,
                        wait: Optional[float] = None) -> OriginateOutcome:
        """Call the customer back and put them through to the queue, and wait for the end of
        the ringing: the OriginateResponse, read as answered / busy / no answer / failed.

        `priority` goes to the customer's QUEUE_PRIO. The answer is awaited at most `wait`
        seconds (default: the ring timeout plus 30 s), also when the Originate's own reply
        did not come in time (Asterisk may have taken it: a late answer still counts).
        AmiRefused when Asterisk refuses the Originate (or the number or queue is refused);
        AmiError when no response comes in time; AmiConnectionLost when the connection drops
        before the reply (the phone may ring all the same: it is never dialled again here).
        """
        headers = originate_headers(self.callback, number, department_queue, caller_id, priority)
        action_id = action_id or f"ivr-callback-{self.rng.getrandbits(64):016x}"
        headers["ActionID"] = action_id
        response: asyncio.Future = asyncio.get_running_loop().create_future()
        limit = wait if wait is not None else self.callback.timeout + 30.0
        # registered before sending (the OriginateResponse may come in the same read as the
        # reply), and kept until the ring time and the margin are over
        self._call_backs[action_id] = response
        try:
            try:
                reply: Optional[Reply] = await self.send_action("Originate", headers, as_list=False)
            except (AmiConnectionLost, AmiRefused):
                raise  # refused before sending; or the answer would come to the lost session only
            except AmiError as exc:
                log.warning("AMI: call-back %s for queue %s: %s; its OriginateResponse is still awaited",
                            action_id, department_queue, exc)
                reply = None
            if reply is not None and (not isinstance(reply, Message) or not reply.success):
                reason = reply.get("Message") if isinstance(reply, Message) else "no answer"
                raise AmiRefused(f"Asterisk refused the call-back for queue {department_queue}: {reason}")
            log.info("AMI: call-back for queue %s ringing (%s)", department_queue, action_id)
            try:
                return await asyncio.wait_for(asyncio.shield(response), limit)
            except asyncio.TimeoutError:
                raise AmiError(f"no OriginateResponse for the call-back {action_id} within {limit:g} s") from None
        finally:
            self._call_backs.pop(action_id, None)

    async def queue_status(self, queue: str) -> QueueState:
        """One queue now (QueueStatus for it): its params, members and waiting callers."""
        status = _event_list(await self.send_action("QueueStatus", {"Queue": check_queue(queue)}), "QueueStatus")
        state = QueueState(queue)
        for message in status:
            kind, headers = message.get("Event", ""), _headers(message)
            if headers.get("Queue") != queue:
                continue
            if kind == "QueueParams":
                state.params = headers
            elif kind == "QueueMember":
                state.members.append(headers)
            elif kind == "QueueEntry":
                state.entries.append(headers)
        return state

    # --- state ---------------------------------------------------------------------------
    def facts(self, uniqueid: str) -> Optional[QueueFacts]:
        """What the queue events said about the call with this Uniqueid (its FastAGI id)."""
        return self.tracker.facts(uniqueid)

    async def resync(self) -> tuple[dict[str, QueueState], list[dict[str, str]]]:
        """QueueStatus and CoreShowChannels now: queues (params, members, waiting callers)
        and the live channels; applied to the tracker and handed to `on_resync`."""
        # as_list stays None: with True, panoramisk never completes an Error answer
        status = await self._queue_status()
        shown = _event_list(await self.send_action("CoreShowChannels"), "CoreShowChannels")
        queues: dict[str, QueueState] = {}
        for message in status:
            kind, headers = message.get("Event", ""), _headers(message)
            name = headers.get("Queue")
            if not name or kind not in ("QueueParams", "QueueMember", "QueueEntry"):
                continue
            state = queues.setdefault(name, QueueState(name))
            if kind == "QueueParams":
                state.params = headers
            elif kind == "QueueMember":
                state.members.append(headers)
            else:
                state.entries.append(headers)
        channels = [_headers(m) for m in shown if m.get("Event") == "CoreShowChannel"]
        entries = [e for q in queues.values() for e in q.entries]
        self.tracker.reconcile(entries, channels, self.clock.now())
        if self.on_resync is not None:
            _run_sink(self.on_resync, queues, channels, what="on_resync", tasks=self._tasks)
        log.info("AMI: re-synced %d queue(s), %d waiting caller(s), %d channel(s)", len(queues), len(entries),
                 len(channels))
        return queues, channels

    async def refresh_queues(self) -> None:
        """QueueStatus now, applied to the queue board (what a missed event got wrong heals)."""
        await self._queue_status()

    async def _queue_status(self) -> list[Message]:
        """QueueStatus's answer, applied to the queue board."""
        token = self.board.begin_sync()
        status = _event_list(await self.send_action("QueueStatus"), "QueueStatus")
        self.board.apply_status([_headers(m) for m in status], token, self.clock.now())
        if not self.connected:  # the connection dropped after the answer came: events may be missed again
            self.board.connection_lost()
        return status

    async def _refresh_queues(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.queue_refresh)
            if not self.connected:
                continue  # the supervisor's re-sync after the reconnect seeds the board again
            try:
                await self.refresh_queues()
            except AmiConnectionLost:
                pass
            except AmiError as exc:
                log.warning("AMI: queue refresh failed: %s", exc)
            except Exception:  # noqa: BLE001 - a bug must not end the refresher: the board would stay stale for good
                log.exception("AMI: queue refresh broke; trying again at the next refresh")

    async def _resync_logged(self) -> None:
        try:
            await self.resync()
        except AmiConnectionLost:
            pass  # the supervisor reconnects, and re-syncs then
        except AmiError as exc:
            # an Asterisk that is starting takes logins before its modules are loaded
            # ("Invalid/unknown command: QueueStatus"): try again until it answers
            log.error("AMI: re-sync failed: %s; trying again", exc)
            if self._resync_retry is None or self._resync_retry.done():
                self._resync_retry = asyncio.create_task(self._resync_until_done(), name="ami-resync-retry")

    async def _resync_until_done(self) -> None:
        attempt = 0
        while not self._closing and self.connected:
            await asyncio.sleep(backoff_delay(attempt, self.backoff_base, RESYNC_RETRY_CAP, self.rng))
            attempt += 1
            if self._closing or not self.connected:
                return  # the supervisor re-syncs after it reconnects
            try:
                await self.resync()
            except AmiConnectionLost:
                return
            except AmiError as exc:
                log.debug("AMI: re-sync failed again (attempt %d): %s", attempt, exc)
                continue
            log.warning("AMI: re-synced after %d more attempt(s)", attempt)
            return

    # --- events --------------------------------------------------------------------------
    def _event(self, message: Message) -> None:
        name = message.get("Event", "")
        if not isinstance(name, str) or name not in _READS:  # a repeated Event header is a list
            self._unused(str(name))
            return
        self.events_read += 1
        try:
            headers = _headers(message)
            if name == "OriginateResponse":
                self._originate_response(headers)
                return
            at = self._at(headers)
            self.tracker.handle(name, headers, at)
            self.board.handle(name, headers, at)
        except Exception:  # noqa: BLE001 - an exception here would kill panoramisk's reader
            log.exception("AMI: cannot handle event %s", message.get("Event"))

    def _unused(self, name: str) -> None:
        self.events_unused += 1
        if self._unused_reported or not self._filter_settled or name == _GREETING:
            return
        self._unused_reported = True
        log.warning("AMI: Asterisk sends user %s events the engine does not read (%s is the first): parsing them "
                    "costs CPU on every call. Give the user the eventfilter lines of the manager.conf that "
                    "`ivr asterisk-config` writes (docs/operations.md)", self.username, name[:60])

    def _at(self, headers: Mapping[str, Any]) -> dt.datetime:
        """The event's time: its Timestamp header (manager.conf timestampevents) or now."""
        stamp = headers.get("Timestamp")
        if stamp:
            try:
                return dt.datetime.fromtimestamp(float(stamp), dt.timezone.utc)
            except (TypeError, ValueError, OverflowError):
                pass
        return self.clock.now()

    def _originate_response(self, headers: Mapping[str, Any]) -> None:
        waiting = self._call_backs.get(str(headers.get("ActionID", "")))
        if waiting is not None and not waiting.done():
            waiting.set_result(attempt_result(headers))
