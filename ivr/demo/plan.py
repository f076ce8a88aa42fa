"""What the demo's callers do: who calls, when, which keys they press, how queues end.

The plan is made before any call runs, from a seed alone: the same seed gives the same
callers, journeys, keys, waits and survey answers on any day. Journeys are drawn by
quota (each kind's share of N, largest remainders first), so even a small N holds every
kind the weights allow and tests can count outcomes. Times fall in the last `days` days
in the office schedule's zone, each in the opening-hours state its journey needs (open,
evening, weekend, holiday), so the flow's hours node sends it where the journey expects.

Keys are read from the example flows (which key leads to sales, which language is "2"),
so renumbering a menu keeps the demo working; a flow without the nodes the journeys go
through is refused with a DemoError naming what is missing.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ivr.channels.scripted import QueueScript
from ivr.settings.config import Config
from ivr.errors import DemoError
from ivr.events import Outcome, TransferStatus
from ivr.flow.model import FlowSet
from ivr.flow.nodes.base import Node
from ivr.settings.hours import CLOSED, HOLIDAY, OPEN, Schedule
from ivr.settings.segments import Segment

PL_NAMES = ("Anna Nowak", "Piotr Kowalski", "Katarzyna Wiśniewska", "Tomasz Wójcik", "Magdalena Kamińska",
            "Marek Lewandowski", "Agnieszka Zielińska", "Paweł Szymański", "Ewa Woźniak", "Michał Dąbrowski")
EN_NAMES = ("John Smith", "Emma Brown", "Oliver Jones", "Sophie Taylor", "James Wilson")
# Net-promoter answers lean to 9-10 with a tail of detractors; a long wait shifts them down.
NPS = (4, 2, 2, 3, 3, 5, 6, 10, 15, 22, 28)
NPS_AFTER_LONG_WAIT = (9, 5, 6, 7, 7, 9, 9, 12, 12, 12, 12)
LONG_WAIT = 60.0

# kind: (relative weight, hours state, outcome); the builders are _Journeys' methods
KINDS: dict[str, tuple[int, str, Outcome]] = {
    "sales": (140, OPEN, Outcome.ANSWERED), "sales_overflow": (25, OPEN, Outcome.ANSWERED),
    "sales_callback": (20, OPEN, Outcome.CALLBACK), "sales_voicemail": (15, OPEN, Outcome.VOICEMAIL),
    "sales_abandoned": (30, OPEN, Outcome.ABANDONED), "complaints": (85, OPEN, Outcome.ANSWERED),
    "complaints_voicemail": (10, OPEN, Outcome.VOICEMAIL), "complaints_abandoned": (20, OPEN, Outcome.ABANDONED),
    "support": (90, OPEN, Outcome.ANSWERED), "support_business": (30, OPEN, Outcome.ANSWERED),
    "support_no_account": (20, OPEN, Outcome.ANSWERED), "support_callback": (20, OPEN, Outcome.CALLBACK),
    "faq": (100, OPEN, Outcome.SELF_SERVICE), "faq_to_agent": (25, OPEN, Outcome.ANSWERED),
    "operator": (50, OPEN, Outcome.ANSWERED), "unanswered": (20, OPEN, Outcome.UNANSWERED),
    "menu_trouble": (60, OPEN, Outcome.ANSWERED), "menu_hangup": (40, OPEN, Outcome.ABANDONED),
    "vip": (50, OPEN, Outcome.ANSWERED), "vip_overflow": (15, OPEN, Outcome.ANSWERED),
    "after_hours": (80, "evening", Outcome.VOICEMAIL), "weekend": (50, "weekend", Outcome.VOICEMAIL),
    "holiday": (30, HOLIDAY, Outcome.VOICEMAIL),
}
Script = dict[str, Any]  # keys, queue results and the account number of one call
WITHHELD_OK = ("faq", "menu_hangup", "after_hours", "weekend", "holiday")  # need no number to call back


@dataclass(frozen=True)
class Caller:
    number: str  # as the line delivers it; "" when withheld
    name: Optional[str]
    language: str  # the language they choose in the menu
    vip: bool = False


@dataclass(frozen=True)
class PlannedCall:
    index: int
    kind: str  # a key of KINDS
    expected: Outcome  # the outcome the journey leads to
    caller: Caller
    at: dt.datetime  # local time in the schedule's zone
    keys: tuple[str, ...]  # tokens of the scripted channel
    queue: tuple[QueueScript, ...]
    voicemail_seconds: float
    barge_in: bool
    account: Optional[str]  # the account number typed (sensitive: must never be stored)
    seed: str  # of the call's own random choices while it runs (agent, speech pauses)


def plan_calls(flows: FlowSet, config: Config, calls: int, *, seed: int, days: int,
               now: Optional[dt.datetime] = None) -> list[PlannedCall]:
    """`calls` planned calls of the example line, the same for the same seed (and `now`)."""
    rng = random.Random(f"ivr-demo/{seed}")
    keys = _Keys(flows)
    times = _Times(keys.schedule, now or dt.datetime.now(dt.timezone.utc), days)
    regular, vips = _callers(rng, max(6, calls * 2 // 3), keys.vip, config)
    journeys = _Journeys(keys, [c.number for c in regular + vips])
    kinds = _quota(calls)
    rng.shuffle(kinds)
    plans = []
    for index, kind in enumerate(kinds):
        r = random.Random(f"ivr-demo/{seed}/{index}")
        _weight, state, expected = KINDS[kind]
        caller = _pick_caller(r, kind, regular, vips)
        script: Script = getattr(journeys, kind)(r, caller)
        plans.append(PlannedCall(
            index, kind, expected, caller, times.pick(r, state), tuple(script.get("keys", ())),
            tuple(script.get("queue", ())), float(round(r.uniform(6, 40))),
            state == OPEN and not caller.vip and r.random() < 0.15, script.get("account"), f"{seed}/{index}/run"))
    return plans


def _quota(calls: int) -> list[str]:
    total = sum(w for w, _s, _o in KINDS.values())
    shares = {kind: calls * w / total for kind, (w, _s, _o) in KINDS.items()}
    counts = {kind: int(share) for kind, share in shares.items()}
    order = sorted(KINDS, key=lambda kind: counts[kind] - shares[kind])  # largest remainder first (stable)
    for kind in order[: calls - sum(counts.values())]:
        counts[kind] += 1
    return [kind for kind in KINDS for _ in range(counts[kind])]


def _pick_caller(rng: random.Random, kind: str, regular: list[Caller], vips: list[Caller]) -> Caller:
    if kind.startswith("vip"):
        return rng.choice(vips)
    if kind in WITHHELD_OK and rng.random() < 0.06:
        return Caller("", None, rng.choice(("pl", "pl", "en")))
    if KINDS[kind][1] != OPEN and vips and rng.random() < 0.05:
        return rng.choice(vips)
    # a few numbers call again and again, most call once: weights fall with the rank
    return rng.choices(regular, weights=[1 / (i + 1) ** 0.9 for i in range(len(regular))])[0]


def _callers(rng: random.Random, count: int, vip: Segment, config: Config) -> tuple[list[Caller], list[Caller]]:
    # as the line delivers them: no spaces
    vips = [Caller(n.replace(" ", ""), name or None, "en" if n.replace(" ", "").startswith("+44") else "pl", True)
            for n, name in _segment_rows(vip, config)]
    if not vips:
        raise DemoError(f'segment "{vip.name}" of config.yaml lists no numbers; the premium journeys need one')
    regular: list[Caller] = []
    seen: set[str] = set()
    while len(regular) < count:
        if rng.random() < 0.15:
            number, language, names = "+447" + _digits(rng, 9), "en", EN_NAMES
        else:
            number = "+48" + (rng.choice("5678") + _digits(rng, 8) if rng.random() < 0.8 else "22" + _digits(rng, 7))
            language, names = ("en" if rng.random() < 0.1 else "pl"), PL_NAMES
        if number in seen or number in vip:
            continue
        seen.add(number)
        regular.append(Caller(number, rng.choice(names) if rng.random() < 0.5 else None, language))
    return regular, vips


def _segment_rows(segment: Segment, config: Config) -> list[tuple[str, str]]:
    """(number, name) of a segment as config.yaml gives it: a list, or a CSV file."""
    source = ((config.raw.get("segments") or {}).get(segment.name) or {}).get("numbers")
    if isinstance(source, list):
        return [(str(n), "") for n in source]
    rows = []
    with open(Path(config.root) / str(source), encoding="utf-8", newline="") as file:
        for row in csv.reader(file):
            if row and not row[0].strip().startswith("#") and sum(c.isdigit() for c in row[0]) >= 4:
                rows.append((row[0].strip(), row[1].strip() if len(row) > 1 else ""))
    return rows


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


class _Keys:
    """The keys of the example flows, read from their menus (and checked to be there)."""

    def __init__(self, flows: FlowSet):
        self.flows = flows
        language = self._node("main", "language", "menu")
        self.language = {o.language: key for key, o in language.options.items() if o.language}
        self.main = self._options("main", "main_menu", "sales", "complaints", "support_account", "faq", "operator")
        self.repeat = self._node("main", "main_menu", "menu").repeat_key
        self.faq = self._options("faq", "faq_menu", "opening_hours", "delivery_times", "how_to_complain",
                                 "back_to_main")
        self.more = self._options("faq", "anything_else", "faq_menu", "to_operator", "goodbye")
        self.accept = {name: self._node("main", name, "callback").accept_key
                       for name in ("callback_offer", "support_callback")}
        # the keys that book a call-back on the caller's own number: accept, and keep the number if asked
        self.book = {name: [key] * (2 if self._node("main", name, "callback").number_prompt else 1)
                     for name, key in self.accept.items()}
        account = self._node("main", "support_account", "input")
        self.account_digits = (account.min_digits, account.max_digits)
        self.business = self._node("main", "account_route", "route").when[0].matches
        self.vip = self._node("main", "vip_check", "route").when[0].segment
        self.schedule: Schedule = self._node("main", "open_check", "hours").schedule
        if not self.language or self.business is None or self.vip is None:
            raise DemoError("ivr demo plays journeys of the example customer line (flows/main.yaml): its language "
                            "menu, VIP route and business-account route are not as they are there")

    def _node(self, flow: str, name: str, kind: str) -> Any:
        node: Optional[Node] = self.flows.flows[flow].nodes.get(name) if flow in self.flows else None
        if node is None or node.type != kind:
            raise DemoError(f'ivr demo plays journeys of the example customer line (flows/main.yaml, flows/faq.yaml): '
                            f'flow "{flow}" has no {kind} node "{name}"')
        return node

    def _options(self, flow: str, menu: str, *targets: str) -> dict[str, str]:
        options = {option.next: key for key, option in self._node(flow, menu, "menu").options.items()}
        missing = [t for t in targets if t not in options]
        if missing:
            raise DemoError(f'ivr demo plays journeys of the example customer line: menu "{menu}" of flow "{flow}" '
                            f'has no option to {", ".join(missing)}')
        return options


class _Journeys:
    """One method per kind of KINDS: the keys and queue results of one call of that kind."""

    def __init__(self, keys: _Keys, numbers: list[str]):
        self.k = keys
        self.numbers = [n.replace("+", "").replace(" ", "") for n in numbers]

    # --- pieces ---------------------------------------------------------------------------
    def _hello(self, rng: random.Random, caller: Caller) -> list[str]:
        """The language menu: the caller's key; now and then a wrong key or silence first."""
        key = self.k.language.get(caller.language) or next(iter(self.k.language.values()))
        r = rng.random()
        if r < 0.06 and caller.language == "pl":
            return ["-", "-"]  # no choice: the line goes on in its first language
        if r < 0.10:
            return [next(d for d in "987" if d not in self.k.language), key]
        return [key]

    def _menu(self, rng: random.Random, caller: Caller, target: str) -> list[str]:
        return self._hello(rng, caller) + [self.k.main[target]]

    @staticmethod
    def _answered(rng: random.Random) -> QueueScript:
        # most callers wait seconds, a few minutes; talk is kept short: every second is on disk
        wait = min(150.0, 3 + round(rng.lognormvariate(math.log(15), 0.8)))
        return QueueScript(TransferStatus.ANSWERED, wait=wait, talk=float(round(rng.triangular(20, 120, 35))))

    @staticmethod
    def _abandoned(rng: random.Random) -> QueueScript:
        return QueueScript(TransferStatus.ABANDONED, wait=float(round(rng.uniform(15, 110))))

    @staticmethod
    def _survey(rng: random.Random, wait: float) -> list[str]:
        """The answer to the survey, if it is asked (the engine samples the calls)."""
        r = rng.random()
        if r < 0.06:
            return ["hangup"]
        if r < 0.12:
            return ["-", "-"]
        score = rng.choices(range(11), weights=NPS if wait < LONG_WAIT else NPS_AFTER_LONG_WAIT)[0]
        return (["12#"] if r > 0.97 else []) + [f"{score}#"]

    def _agent(self, rng: random.Random, keys: list[str], before: tuple[QueueScript, ...] = ()) -> Script:
        answered = self._answered(rng)
        queue = before + (answered,)
        return {"keys": keys + self._survey(rng, sum(q.wait or 0.0 for q in queue)), "queue": queue}

    def _account(self, rng: random.Random, business: bool) -> str:
        low, high = self.k.account_digits
        while True:
            length = rng.randint(max(low, 7), min(high, 9))  # short of max_digits: the caller ends with '#'
            digits = rng.choice("9" if business else "2345678") + _digits(rng, length - 1)
            # a business number matches the route; no account looks like part of a phone number
            if bool(self.k.business.search(digits)) == business and not any(digits in n for n in self.numbers):
                return digits

    # --- journeys -------------------------------------------------------------------------
    def sales(self, rng: random.Random, caller: Caller) -> Script:
        return self._agent(rng, self._menu(rng, caller, "sales"))

    def sales_overflow(self, rng: random.Random, caller: Caller) -> Script:
        return self._agent(rng, self._menu(rng, caller, "sales"), (QueueScript(TransferStatus.TIMED_OUT),))

    def sales_callback(self, rng: random.Random, caller: Caller) -> Script:
        return {"keys": self._menu(rng, caller, "sales") + self.k.book["callback_offer"],
                "queue": (QueueScript(TransferStatus.TIMED_OUT), QueueScript(TransferStatus.TIMED_OUT))}

    def sales_voicemail(self, rng: random.Random, caller: Caller) -> Script:
        decline = next(d for d in "29" if d != self.k.accept["callback_offer"])
        return {"keys": self._menu(rng, caller, "sales") + [decline],
                "queue": (QueueScript(TransferStatus.TIMED_OUT),) * 2}

    def sales_abandoned(self, rng: random.Random, caller: Caller) -> Script:
        return {"keys": self._menu(rng, caller, "sales"), "queue": (self._abandoned(rng),)}

    def complaints(self, rng: random.Random, caller: Caller) -> Script:
        return self._agent(rng, self._menu(rng, caller, "complaints"))

    def complaints_voicemail(self, rng: random.Random, caller: Caller) -> Script:
        return {"keys": self._menu(rng, caller, "complaints"), "queue": (QueueScript(TransferStatus.TIMED_OUT),)}

    def complaints_abandoned(self, rng: random.Random, caller: Caller) -> Script:
        return {"keys": self._menu(rng, caller, "complaints"), "queue": (self._abandoned(rng),)}

    def support(self, rng: random.Random, caller: Caller, business: bool = False) -> Script:
        account = self._account(rng, business)
        typed = [account[:3] + "#"] if rng.random() < 0.2 else []  # too short first: "six to ten digits"
        script = self._agent(rng, self._menu(rng, caller, "support_account") + typed + [account + "#"])
        return {**script, "account": account}

    def support_business(self, rng: random.Random, caller: Caller) -> Script:
        return self.support(rng, caller, business=True)

    def support_no_account(self, rng: random.Random, caller: Caller) -> Script:
        return self._agent(rng, self._menu(rng, caller, "support_account") + ["-", "-"])

    def support_callback(self, rng: random.Random, caller: Caller) -> Script:
        account = self._account(rng, False)
        keys = self._menu(rng, caller, "support_account") + [account + "#", *self.k.book["support_callback"]]
        return {"keys": keys, "queue": (QueueScript(TransferStatus.TIMED_OUT),), "account": account}

    def faq(self, rng: random.Random, caller: Caller) -> Script:
        topics = [self.k.faq[t] for t in ("opening_hours", "delivery_times", "how_to_complain")]
        keys = self._menu(rng, caller, "faq") + [rng.choice(topics)]
        if rng.random() < 0.3:  # another answer, then done
            keys += [self.k.more["faq_menu"], rng.choice(topics)]
        return {"keys": keys + (["-", "-"] if rng.random() < 0.25 else [self.k.more["goodbye"]])}

    def faq_to_agent(self, rng: random.Random, caller: Caller) -> Script:
        if rng.random() < 0.5:  # an answer did not help: an agent, please
            keys = [self.k.faq["opening_hours"], self.k.more["to_operator"]]
        else:  # back to the main menu, then sales
            keys = [self.k.faq["back_to_main"], self.k.main["sales"]]
        return self._agent(rng, self._menu(rng, caller, "faq") + keys)

    def operator(self, rng: random.Random, caller: Caller) -> Script:
        return self._agent(rng, self._menu(rng, caller, "operator"))

    def unanswered(self, rng: random.Random, caller: Caller) -> Script:
        # the operator queue and its overflow group both time out; the flow has nowhere left
        return {"keys": self._menu(rng, caller, "operator"), "queue": (QueueScript(TransferStatus.TIMED_OUT),) * 2}

    def menu_trouble(self, rng: random.Random, caller: Caller) -> Script:
        wrong = next(d for d in "987654" if d not in self.k.main.values())
        r = rng.random()
        if r < 0.35:
            keys = [wrong, self.k.main[rng.choice(("sales", "complaints", "operator"))]]
        elif r < 0.6:
            keys = ["-", self.k.main["sales"]]
        elif r < 0.8 and self.k.repeat:
            keys = [self.k.repeat, self.k.main["complaints"]]
        else:  # three failures: the flow hands the caller to an operator
            keys = [wrong, "-", wrong]
        return self._agent(rng, self._hello(rng, caller) + keys)

    def menu_hangup(self, rng: random.Random, caller: Caller) -> Script:
        where = rng.choice(("language", "main", "main", "faq", "account"))
        if where == "language":
            return {"keys": ["hangup"]}
        if where == "main":
            return {"keys": self._hello(rng, caller) + ["hangup"]}
        return {"keys": self._menu(rng, caller, "faq" if where == "faq" else "support_account") + ["hangup"]}

    def vip(self, rng: random.Random, caller: Caller) -> Script:
        return self._agent(rng, [])

    def vip_overflow(self, rng: random.Random, caller: Caller) -> Script:
        return self._agent(rng, [], (QueueScript(TransferStatus.TIMED_OUT),))

    def after_hours(self, rng: random.Random, caller: Caller) -> Script:
        return {}

    weekend = holiday = after_hours


class _Times:
    """Moments in the last `days` days (local to the schedule) in a wanted opening state."""

    WINDOWS = {OPEN: (0, 1440), "evening": (6 * 60, 23 * 60), "weekend": (8 * 60, 20 * 60), HOLIDAY: (8 * 60, 18 * 60)}
    STATES = {OPEN: OPEN, "evening": CLOSED, "weekend": CLOSED, HOLIDAY: HOLIDAY}
    MARGIN = dt.timedelta(minutes=20)  # a call ended before now

    def __init__(self, schedule: Schedule, now: dt.datetime, days: int):
        self.schedule = schedule
        self.zone = schedule.timezone
        self.latest = (now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)).astimezone(self.zone) - self.MARGIN
        self.days = days
        self._days: dict[str, list[dt.date]] = {}

    def _fits(self, day: dt.date, kind: str) -> bool:
        holiday = day in self.schedule.holidays
        if kind == HOLIDAY:
            return holiday
        if holiday:
            return False
        if kind == "evening":
            return day.weekday() < 5
        if kind == "weekend":
            return day.weekday() >= 5
        return bool(self.schedule.weekly[day.weekday()])

    def _candidates(self, kind: str) -> tuple[list[dt.date], list[dt.date]]:
        """Days of the window that suit `kind`, and the newest such day before the window
        (for a window without one: no holiday in it, say)."""
        if kind not in self._days:
            today = self.latest.date()
            self._days[kind] = [today - dt.timedelta(days=d) for d in range(self.days)
                                if self._fits(today - dt.timedelta(days=d), kind)]
            older = (today - dt.timedelta(days=d) for d in range(self.days, self.days + 400))
            self._days[kind + "/older"] = [d for d in older if self._fits(d, kind)][:1]
        return self._days[kind], self._days[kind + "/older"]

    def pick(self, rng: random.Random, kind: str) -> dt.datetime:
        low, high = self.WINDOWS[kind]
        want = self.STATES[kind]
        for days in self._candidates(kind):
            for _ in range(200 if days else 0):
                day = rng.choice(days)
                at = dt.datetime.combine(day, dt.time(0), self.zone) + dt.timedelta(minutes=rng.uniform(low, high))
                at = at.replace(microsecond=0)
                # still in that state when the hours node asks, a few seconds into the call
                if at <= self.latest and self.schedule.state(at) == want == \
                        self.schedule.state(at + dt.timedelta(seconds=90)):
                    return at
        raise DemoError(f'schedule "{self.schedule.name}" has no {kind} time in the last {self.days} days '
                        "(nor in the year before) for the demo's calls")
