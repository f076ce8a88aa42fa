"""Asterisk configuration generated from config.yaml: `ivr asterisk-config -o DIR`.

Three files, written with plain string templates:

- extensions.conf: context `ivr` for incoming calls: one extension per line of
  config.yaml (`lines:`, a number or a pattern -> a flow), then `100`, `_X.`, `_+X.` and `s`
  for every other number. Each: Answer, the default language, a MixMonitor recording of
  the whole call to `<recordings>/<YYYY-MM-DD>/<UNIQUEID>.wav` (its path kept in
  `IVR_RECORDING`; the engine mutes it over AMI during sensitive input), then
  `AGI(agi://HOST:PORT/<flow>)` (`main` unless `lines:` says otherwise). If the engine
  cannot be reached (`AGISTATUS` = FAILURE) the caller goes straight to the fallback
  department's queue, then to its overflow, and never hears silence. The dialled number
  itself never reaches a command: Asterisk matches it against the extensions, and the flow
  comes from config.yaml.
  Context `ivr-callback` (the call-back contract of `ivr.asterisk.callback`): one extension
  per queue. The file ends with `#tryinclude extensions_site.conf` for a site's own
  contexts (trunks, the test bed's fake agents), so this file can be generated again.
- queues.conf: one queue per department, from a template of contact-centre settings, with
  the department's announcements (position, expected wait, reminder; `with_announcements`
  adds what the flows ask for).
- manager.conf: the engine's AMI user with the least rights its actions need, bound to
  the configured address; the secret is read from the environment, never printed. Its
  event filter lets through only the events the engine reads (`ivr.asterisk.event_filter`).

With several Asterisks (config.yaml `asterisk.nodes`, docs/nodes.md) the three files are
written once per node, into a folder named after it: each node's dialplan sends calls to
the node's FastAGI address and names the node in the AGI argument `node=<name>`, so the
engine reads that node's queues and dials that node's call-backs; its manager.conf is the
node's AMI account. queues.conf is the same on every node.

Every value from config.yaml that lands in a file is checked, or escaped here: a line
break or `;` in a value would end a line or start a comment, i.e. inject configuration.
The `asterisk:` section is checked when config.yaml is read (ivr.settings.asterisk);
departments, folders and the secret are checked here.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from ivr.asterisk.event_filter import manager_conf_lines
from ivr.settings.asterisk import LANGUAGE_CODE, NAME, NAME_RULE, AmiSettings, NodeSettings
from ivr.settings.announce import Announcements
from ivr.settings.lines import DEFAULT_FLOW, NUMBER as LINE_NUMBER, PATTERN as LINE_PATTERN
from ivr.settings.config import Config, Department, expand_env
from ivr.errors import AsteriskError, MissingSecret

FILES = ("extensions.conf", "queues.conf", "manager.conf")
SITE_INCLUDE = "extensions_site.conf"  # a site's own contexts; optional
INCOMING_EXTENSIONS = ("100", "_X.", "_+X.", "s")  # every number without a line of its own
AGI_SCRIPT = DEFAULT_FLOW  # the flow of every number without a line of its own (config.yaml `lines`)
FAILSAFE_CONTEXT = "ivr-failsafe"
FAILSAFE_WAIT = 300  # seconds in the fallback queue before its overflow queue is tried
QUEUE_TEMPLATE = "ivr-queue-defaults"

# AMI rights of the engine's user, checked with `manager show command <Action>` and
# `manager show event` on Asterisk 22 (an action is allowed when the user holds ANY ONE of
# its classes):
#   Originate (call-backs)         originate,all
#   MixMonitorMute (mute on input) system,call,all   -> call (system would also allow
#                                                       module loads and reloads)
#   CoreShowChannels (re-sync)     system,reporting,all -> reporting
#   QueueStatus, Ping, Events      <none>
# Events the engine reads: Queue*/Agent* (class agent), OriginateResponse (class call).
AMI_READ = ("call", "agent")
AMI_WRITE = ("originate", "call", "reporting")

_INTERFACE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[A-Za-z0-9_.+@#*/:-]+$")  # PJSIP/101, Local/200@agents/n
_FLOW = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # a flow id (ivr.yamldoc.values.is_name)
_PATH_FORBIDDEN = set(",;$()[]{}\"'\\|`")  # would split or evaluate a dialplan argument
_RESERVED_SECTIONS = {"general", QUEUE_TEMPLATE}


NODE_ARGUMENT = "node="  # the AGI argument that names the node a call came from: node=<name>


def agi_url(config: Config, flow: Optional[str] = None, node: Optional[NodeSettings] = None) -> str:
    """Where the dialplan (of `node`) sends incoming calls for `flow` (default: the default
    line's): the engine's FastAGI server (or the node's FastAGI address), the flow in the
    script path."""
    agi = config.asterisk.agi
    host, port = node.agi_address(agi) if node is not None else (agi.host, agi.port)
    flow = flow or config.lines.default
    if not _FLOW.fullmatch(flow):  # a path segment of the URL, one dialplan argument
        raise AsteriskError(f"the flow of a line must be a flow name (letters, digits, '_' and '-'), "
                            f"not {_comment(repr(flow))}")
    return f"agi://{host}:{port}/{flow}"


def agi_application(config: Config, flow: Optional[str] = None, node: Optional[NodeSettings] = None) -> str:
    """The AGI() arguments of an incoming call: the URL, and with several nodes the node's name."""
    url = agi_url(config, flow, node)
    if node is None or not config.asterisk.multi_node:
        return url
    return f"{url},{NODE_ARGUMENT}{_name(node.name, 'a node name')}"


def channel_language(config: Config) -> str:
    """The language a call starts in: asterisk.language, else the first of prompts.voices."""
    voices = list(config.prompts.voices)
    language = config.asterisk.language or (voices[0] if voices else "en")
    if not LANGUAGE_CODE.fullmatch(language):
        raise AsteriskError(f"the first language of prompts.voices must be a language code such as pl or en, "
                            f"not {_comment(repr(language))} (or set asterisk.language)")
    return language


def recordings_dir(config: Config) -> Path:
    """The recordings folder as Asterisk writes to it (absolute), checked for dialplan syntax."""
    return _path(config.recordings_dir.resolve(), "recordings.dir")


# --- extensions.conf -----------------------------------------------------------------------
def extensions_conf(config: Config, node: Optional[NodeSettings] = None) -> str:
    """The dialplan (of `node`, with several): incoming calls to the engine, the fail-safe,
    the call-back context."""
    language, url = channel_language(config), agi_application(config, node=node)
    recording = f"{recordings_dir(config)}/${{STRFTIME(${{EPOCH}},,%Y-%m-%d)}}/${{UNIQUEID}}.wav"
    chain = fallback_chain(config)
    out = [
        _HEADER,
        "; Calls for the IVR: send them here, e.g. from a trunk's context with",
        ";   exten => _X.,1,Goto(ivr,${EXTEN},1)",
        "; The whole call is recorded (IVR_RECORDING holds the file); the engine mutes the",
        "; caller's side (AMI MixMonitorMute) while a sensitive input such as an account or",
        "; card number is typed. The engine ends every call it runs by hanging up, so a",
        "; caller still on the line after AGI() returns was let down: the engine could not be",
        "; reached (AGISTATUS=FAILURE), or it dropped the call midway (SUCCESS, channel up).",
        "; Either way the caller goes to the fail-safe queue.",
        "[ivr]",
    ]
    incoming = [(line.number, line.flow) for line in config.lines.lines]
    if incoming:
        out.append("; Lines (config.yaml `lines`): each number or pattern starts its own flow.")
    for number, flow in incoming:
        out += _incoming(_line_number(number), language, recording, agi_application(config, flow, node))
    if incoming:
        out.append(f"; Every other number: flow {config.lines.default}.")
    for exten in INCOMING_EXTENSIONS:
        if exten not in config.lines.numbers:
            out += _incoming(exten, language, recording, url)
    out += _failsafe(chain, agi_url(config, node=node))
    context = config.asterisk.callback.context
    if context:
        out += _callbacks(config, context, language, recording)
    out += [
        "; A site's own contexts (trunks that send calls to [ivr], test contexts) live in a",
        "; file of their own, so that this one can be generated again.",
        f"#tryinclude {SITE_INCLUDE}",
        "",
    ]
    return "\n".join(out)


def _incoming(exten: str, language: str, recording: str, url: str) -> list[str]:
    return [
        f"exten => {exten},1,NoOp(IVR call ${{UNIQUEID}} to ${{EXTEN}})",
        " same => n,Answer()",
        f" same => n,Set(CHANNEL(language)={language})",
        f" same => n,Set(IVR_RECORDING={recording})",
        " same => n,MixMonitor(${IVR_RECORDING})",
        f" same => n,AGI({url})",
        f" same => n,Goto({FAILSAFE_CONTEXT},s,1)",
        "",
    ]


def _line_number(number: str) -> str:
    """A line's number as an extension name, checked again here (a Config may be built
    without config.yaml): anything else could end the line or start a comment."""
    if not (LINE_NUMBER.fullmatch(number) or LINE_PATTERN.fullmatch(number)):
        raise AsteriskError(f"the number of a line must be digits (* # and a leading +) or an Asterisk pattern "
                            f"such as _4822123XXXX, not {_comment(repr(number))}")
    return number


def _failsafe(chain: list[Department], url: str) -> list[str]:
    first = chain[0]
    out = [
        f"; The engine at {url} is unreachable or dropped the call: callers go to the fallback",
        f"; department's queue ({_comment(first.name)}), then its overflow; nobody hears silence.",
        "; A caller an agent has served already (Queue's c option: QUEUESTATUS=CONTINUE) is not",
        "; queued again when the engine stops after it: the call ends there.",
        f"[{FAILSAFE_CONTEXT}]",
        'exten => s,1,GotoIf($["${QUEUESTATUS}" = "CONTINUE"]?served)',
        f" same => n,Log(WARNING,IVR engine at {url} did not finish the call (AGISTATUS=${{AGISTATUS}}): ${{CHANNEL}} goes to queue {first.queue})",
    ]
    for i, department in enumerate(chain):
        last = i == len(chain) - 1  # the last queue keeps the caller until an agent answers
        args = department.queue if last else f"{department.queue},,,,{FAILSAFE_WAIT}"
        out.append(f" same => n,Queue({args})  ; department {_comment(department.name)}")
        out.append(f" same => n,NoOp(queue {department.queue} ended: ${{QUEUESTATUS}})")
    out += [
        " same => n,Playback(all-circuits-busy-now&please-try-call-later&goodbye)",
        " same => n,Hangup()",
        f" same => n(served),Log(NOTICE,IVR engine at {url} did not finish the call of ${{CHANNEL}} after an agent "
        "answered it: the call ends)",
        " same => n,Hangup()",
        "",
    ]
    return out


def _callbacks(config: Config, context: str, language: str, recording: str) -> list[str]:
    out = [
        "; Call-backs (ivr.asterisk.callback): AMI Originate dials the customer; when they",
        "; answer, their channel runs extension <queue> here and waits for an agent.",
        f"[{context}]",
    ]
    for department in _unique_queues(config):
        out += [
            f"exten => {department.queue},1,NoOp(call-back for queue {department.queue})",
            f" same => n,Set(CHANNEL(language)={language})",
            f" same => n,Set(IVR_RECORDING={recording})",
            " same => n,MixMonitor(${IVR_RECORDING})",
            f" same => n,Queue({department.queue})",
            " same => n,Hangup()",
        ]
    out.append("")
    return out


def fallback_chain(config: Config) -> list[Department]:
    """The fallback department, then its overflow, then that one's, without repeats."""
    first = config.fallback_department
    if first is None:
        raise AsteriskError("config.yaml has no departments: the fail-safe needs a fallback queue "
                            "(add departments and `fallback: <department>`)")
    chain, seen = [], set()
    department: Optional[Department] = first
    while department is not None and department.name not in seen:
        seen.add(department.name)
        chain.append(_checked_department(department))
        department = config.departments.get(department.overflow) if department.overflow else None
    return chain


# --- queues.conf ---------------------------------------------------------------------------
_QUEUE_DEFAULTS = """\
; Settings every department's queue shares (a template; each queue may override them).
[{template}](!)
musicclass = default
; ring each agent for 15 s, wait 5 s before ringing again; the flow's own maximum wait
; (the Queue() timeout the engine passes) wins over these
timeout = 15
retry = 5
timeoutpriority = app
; 10 s after each call to finish notes before the next caller rings
wrapuptime = 10
; never ring an agent who is already on a call; unanswered agents are not paused
ringinuse = no
autopause = no
autofill = yes
maxlen = 0
servicelevel = 30
; announcements (position, expected wait, reminder) are set per queue below, from
; config.yaml's `announce` and the flows' announce_position; a queue that sets none is silent
announce-frequency = 0
announce-position = no
announce-holdtime = no
periodic-announce-frequency = 0
periodic-announce = queue-periodic-announce
relative-periodic-announce = yes
; joinempty / leavewhenempty: callers may join and stay while agents are busy (inuse) or
; ringing: they will be free soon, which is what a queue is for. They may NOT join, and
; are taken out, when every member is paused, logged out or unreachable (unavailable) or
; misconfigured (invalid): nobody could ever answer, so Queue() ends with QUEUESTATUS
; JOINEMPTY / LEAVEEMPTY and the flow (or the fail-safe) moves on to the overflow
; department instead of leaving the caller waiting forever.
joinempty = paused,unavailable,invalid
leavewhenempty = paused,unavailable,invalid
; after the call the caller's channel holds MEMBERINTERFACE, MEMBERNAME (setinterfacevar),
; QEHOLDTIME, QEORIGINALPOS (setqueueentryvar) and QUEUESTATUS etc. (setqueuevar): the engine
; reads them to record who answered and how long the caller waited
setinterfacevar = yes
setqueueentryvar = yes
setqueuevar = yes
reportholdtime = no
"""


def queues_conf(config: Config) -> str:
    """One queue per department (departments may share a queue if they agree on it)."""
    out = [_HEADER, "[general]", "persistentmembers = no", "shared_lastcall = yes", "",
           _QUEUE_DEFAULTS.format(template=QUEUE_TEMPLATE)]
    for department in _unique_queues(config):
        names = ", ".join(_comment(d.name) for d in config.departments.values() if d.queue == department.queue)
        out.append(f"; department(s): {names}")
        out.append(f"[{department.queue}]({QUEUE_TEMPLATE})")
        out.append(f"strategy = {department.strategy}")
        if department.overflow and department.overflow in config.departments:
            out.append(f"; overflow: department {_comment(department.overflow)} (the engine moves callers there)")
        out += _announcements(department.announce)
        for member in department.members:
            out.append(f"member => {member}")
        if not department.members:
            out.append("; no members: callers cannot join (joinempty) and go to the overflow")
        out.append("")
    return "\n".join(out)


def _announcements(announce: Optional[Announcements]) -> list[str]:
    """The queue's announce-* options; nothing (the template's silence) when it has none."""
    if announce is None or not (announce.speaks or announce.reminder):
        return ["; announcements: none"]
    out = []
    if announce.speaks:
        said = [what for what, on in (("position", announce.position), ("expected wait", announce.wait != "no")) if on]
        out.append(f"; announcements: {' and '.join(said)}, every {announce.every} s while a caller waits")
        if announce.position and announce.position_limit:
            out += ["announce-position = limit", f"announce-position-limit = {announce.position_limit}"]
        else:
            out.append(f"announce-position = {'yes' if announce.position else 'no'}")
        out += [
            f"announce-holdtime = {announce.wait}",
            f"announce-frequency = {announce.every}",
            f"min-announce-frequency = {announce.min_interval}",
            f"announce-round-seconds = {announce.round}",
        ]
    if announce.reminder:
        out += [f"; a reminder that all agents are busy, every {announce.reminder} s of waiting",
                f"periodic-announce-frequency = {announce.reminder}"]
    return out


def silence_warning(config: Config) -> Optional[str]:
    """A warning when no department of config sets `announce` (nor a flow's announce_position
    turned it on): queues.conf's shared template is silent, so an installation whose queues
    announced through the template before hears nothing once it is written again."""
    departments = list(config.departments.values())
    if not departments or any(d.announce is not None for d in departments):
        return None
    return ("no department announces position or wait: add announce: on to a department in config.yaml "
            "(or announce_position: true to its transfer node) for its callers to hear their place in the queue; "
            "queues.conf's shared template is silent, so queues that announced before are silent once it is "
            "written again")


def with_announcements(config: Config, departments: Iterable[str]) -> Config:
    """A copy of config in which the queues of `departments` announce the caller's position.

    Asterisk announces per queue, not per call: what the flows ask for (a transfer node's
    `announce_position: true`) is turned on for every caller of that queue, with the rest of
    the department's `announce` settings (or their defaults)."""
    named = set(departments)
    queues = {d.queue for d in config.departments.values() if d.name in named}
    changed = {}
    for name, department in config.departments.items():
        if department.queue in queues and not (department.announce and department.announce.position):
            announce = replace(department.announce or Announcements(), position=True)
            changed[name] = replace(department, announce=announce)
    return replace(config, departments={**config.departments, **changed}) if changed else config


def _unique_queues(config: Config) -> list[Department]:
    if not config.departments:
        raise AsteriskError("config.yaml has no departments: there is no queue to write")
    queues: dict[str, Department] = {}
    for department in config.departments.values():
        department = _checked_department(department)
        known = queues.get(department.queue)
        if known is None:
            queues[department.queue] = department
        elif (known.members, known.strategy) != (department.members, department.strategy):
            raise AsteriskError(f'departments "{_comment(known.name)}" and "{_comment(department.name)}" share queue '
                                f'"{department.queue}" but not its members and strategy; give each its own queue')
        elif _said(known.announce) != _said(department.announce):
            raise AsteriskError(f'departments "{_comment(known.name)}" and "{_comment(department.name)}" share queue '
                                f'"{department.queue}" but not its announcements (Asterisk announces per queue); '
                                f"give both the same announce, or each its own queue")
    return list(queues.values())


def _said(announce: Optional[Announcements]) -> list[str]:
    return _announcements(announce)


def _checked_department(department: Department) -> Department:
    queue = _name(department.queue, f'queue of department "{_comment(department.name)}"')
    if queue.lower() in _RESERVED_SECTIONS:
        raise AsteriskError(f'queue name "{queue}" is reserved in queues.conf; rename the queue')
    for member in department.members:
        if not isinstance(member, str) or not _INTERFACE.match(member):
            raise AsteriskError(f'member {member!r} of department "{_comment(department.name)}" is no Asterisk '
                                f"interface such as PJSIP/101 or Local/200@agents/n")
    return department


# --- manager.conf --------------------------------------------------------------------------
def manager_conf(config: Config, environ: Mapping[str, str] = os.environ, ami: Optional[AmiSettings] = None,
                 where: str = "asterisk.ami") -> str:
    """The AMI (`ami`: a node's, written at `where` in config.yaml; default the `ami:`
    section's): bound to the configured address, one user with the engine's rights only."""
    ami = ami or config.asterisk.manager
    try:
        secret = expand_env(ami.secret, environ)
    except MissingSecret as exc:
        raise AsteriskError(f"manager.conf needs the AMI secret, but the environment variable {exc.name} "
                            f"is not set (config.yaml {where}.secret is ${{{exc.name}}}); "
                            f"export it and run again") from None
    secret = _secret(secret)
    permits = "\n".join(f"permit = {p}" for p in ami.permit)
    filters = "\n".join(manager_conf_lines())
    return f"""{_HEADER}[general]
enabled = yes
webenabled = no
port = {ami.port}
bindaddr = {ami.host}
displayconnects = no
; several engines may log in with the same user
allowmultiplelogin = yes

; The IVR engine. Rights (a class is enough for an action that lists it):
;   write originate  Originate (call-backs)
;   write call       MixMonitorMute (no recording of account or card numbers)
;   write reporting  CoreShowChannels (state re-sync after a reconnect)
;   (QueueStatus, Ping and Events need no class)
;   read  agent      Queue*/Agent* events (callers joining, agents answering)
;   read  call       OriginateResponse (did the call-back reach the customer?)
; Not granted: system (reload, module load), command (CLI), config, dialplan, user, dtmf.
; Events: of those classes, only the ones the engine reads (include filters: any other
; event is not sent to it). The answers to its actions are never filtered.
[{ami.username}]
secret = {secret}
deny = 0.0.0.0/0.0.0.0
{permits}
read = {','.join(AMI_READ)}
write = {','.join(AMI_WRITE)}
writetimeout = 5000
{filters}
"""


# --- all of it -----------------------------------------------------------------------------
def generate(config: Config, environ: Mapping[str, str] = os.environ,
             node: Optional[NodeSettings] = None) -> dict[str, str]:
    """The three files' texts (of `node`, with several) by file name; AsteriskError names
    what is wrong."""
    return {
        "extensions.conf": extensions_conf(config, node),
        "queues.conf": queues_conf(config),
        "manager.conf": manager_conf(config, environ, node.ami, f"asterisk.nodes.{node.name}.ami")
        if node is not None else manager_conf(config, environ),
    }


def generate_all(config: Config, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Every file by its path under the output folder: the three files, or with several
    nodes (asterisk.nodes) the three of each node in a folder named after it."""
    if not config.asterisk.multi_node:
        return generate(config, environ)
    return {f"{_name(node.name, 'a node name')}/{name}": text
            for node in config.asterisk.nodes for name, text in generate(config, environ, node).items()}


def write_config(config: Config, out_dir: Path, environ: Mapping[str, str] = os.environ) -> list[Path]:
    """Write the three files into out_dir (created), or one folder of them per node;
    manager.conf is readable by its owner only."""
    texts = generate_all(config, environ)  # everything checked before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for relative, text in texts.items():
        path = out_dir / relative
        name = path.name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if name == "manager.conf" else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
        written.append(path)
    return written


def with_members(config: Config, members: Callable[[Department], Iterable[str]]) -> Config:
    """A copy of config whose departments have other members (the test bed's fake agents)."""
    departments = {name: replace(d, members=tuple(members(d))) for name, d in config.departments.items()}
    return replace(config, departments=departments)


# --- checks --------------------------------------------------------------------------------
_HEADER = "; Generated by `ivr asterisk-config` from config.yaml: do not edit, run it again.\n"


def _comment(text: str) -> str:
    """Text safe inside a `;` comment: control characters (line breaks) become '?'."""
    return "".join("?" if unicodedata.category(ch).startswith("C") else ch for ch in str(text))


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise AsteriskError(f"{what} must be {NAME_RULE}, not {_comment(repr(value))}")
    return value


def _path(path: Path, what: str) -> Path:
    text = str(path)
    bad = sorted({ch for ch in text if ch in _PATH_FORBIDDEN or unicodedata.category(ch).startswith("C")})
    if bad:
        raise AsteriskError(f"{what} {_comment(text)!r} holds {_comment(' '.join(bad))!r}, which the dialplan "
                            f"would read as syntax; use a folder without them")
    return path


def _secret(secret: str) -> str:
    """The secret as a manager.conf value: ';' escaped (it starts a comment); no line breaks."""
    if not secret:
        raise AsteriskError("the AMI secret is empty; set a long random one")
    if secret != secret.strip() or any(unicodedata.category(ch).startswith("C") for ch in secret):
        raise AsteriskError("the AMI secret has a line break, a control character or spaces at its ends, "
                            "which manager.conf cannot hold; choose another")
    return secret.replace(";", r"\;")
