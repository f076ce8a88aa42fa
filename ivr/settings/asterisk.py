"""The `asterisk` section of config.yaml: where the engine meets Asterisk.

```yaml
asterisk:
  agi: {host: 127.0.0.1, port: 4573}          # the FastAGI server `ivr serve` listens on
                                              # (shutdown_grace: 10s, calls' time to finish at a stop;
                                              # metrics_host: 127.0.0.1, metrics_port: 9573, where
                                              # /health/live, /health/ready and /metrics are served)
  ami: {host: 127.0.0.1, port: 5038, username: ivr, secret: "${IVR_AMI_SECRET}"}
  callback:                                   # how a call-back is dialled (ivr.asterisk.callback)
    channel: "PJSIP/{number}@trunk"           # {number}: the customer's number; default Local/{number}@testbed-callee
    context: ivr-callback                     # the default; null: the Originate runs Queue() itself
    caller_id: '"Shop" <225550000>'           # optional: what the customer's phone shows
    timeout: 30s                              # how long the customer's phone rings (default 30 s)
  language: pl                                # the language calls start in; default: the first of prompts.voices
```
Several Asterisk servers known to one engine (docs/nodes.md) are `nodes:` instead of `ami:`,
each by name with its AMI account and, optionally, the FastAGI address its dialplan sends
calls to (a balancer in front of several engines; `agi:` above by default):
```yaml
  nodes:
    pbx-a:
      ami: {host: 10.0.0.11, port: 5038, username: ivr, secret: "${IVR_AMI_SECRET_A}"}
      agi: {host: 10.0.0.20, port: 4573}
    pbx-b:
      ami: {host: 10.0.0.12, port: 5038, username: ivr, secret: "${IVR_AMI_SECRET_B}"}
```
`ami:` alone is one node, named `default`.
Without `ami:` the engine runs without the manager interface (no call-backs; sensitive
input stops the recorder instead of muting it), and `ivr asterisk-config` writes
manager.conf for the default user `ivr` with the secret `${IVR_AMI_SECRET}`.

Read once, with config.yaml, so a mistake names config.yaml:line:col. Every value here
may end up in a generated Asterisk file or an AMI header, so each is checked against
what those can hold. The AMI secret stays a `${NAME}` reference: it is read from the
environment only where it is used, and never printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ivr.settings.sections import duration_seconds, port_number, secret_reference, section_fields
from ivr.yamldoc.diagnostics import Findings
from ivr.yamldoc.loader import describe

FIELDS = ("agi", "ami", "nodes", "callback", "language")
NODE_FIELDS = ("ami", "agi")
NODE_AGI_FIELDS = ("host", "port")
DEFAULT_NODE = "default"  # the name of the one node of an `ami:` section
MAX_NODE_NAME = 32  # a node's name is an AGI argument, a metrics label and a column value
AGI_FIELDS = ("host", "port", "shutdown_grace", "metrics_host", "metrics_port")
AMI_FIELDS = ("host", "port", "username", "secret", "permit")
CALLBACK_FIELDS = ("channel", "context", "caller_id", "timeout")

# Each pattern is matched against the whole value (fullmatch): a trailing line break
# would end a line of a generated file. A name in an Asterisk config file (a queue, a
# context, a manager.conf user) holds no `;`, blank or line break.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
NAME_RULE = "letters, digits, '-' and '_' (starting with a letter or digit)"
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:_[A-Za-z0-9]+)?")
_HOST = re.compile(r"[A-Za-z0-9.:-]+")
_PERMIT = re.compile(r"[0-9a-fA-F.:]+(?:/[0-9a-fA-F.:]+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DEFAULT_SECRET = "${IVR_AMI_SECRET}"
LOCAL_ONLY = ("127.0.0.1/255.255.255.255",)
MAX_GRACE = 600.0  # seconds: asterisk.agi.shutdown_grace


@dataclass(frozen=True)
class AgiSettings:
    """Where `ivr serve` listens for FastAGI, and where the dialplan sends calls."""

    host: str = "127.0.0.1"
    port: int = 4573
    # seconds calls in progress have to finish when `ivr serve` is stopped; the rest are
    # ended as interrupted and handed back to the dialplan's fail-safe queue
    shutdown_grace: float = 10.0
    # `ivr serve`'s health (/health/live, /health/ready) and Prometheus metrics (/metrics),
    # over HTTP; on this host only by default (ivr.metrics_access says who may read /metrics)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9573


@dataclass(frozen=True)
class AmiSettings:
    """The engine's Asterisk Manager account, and who may log in with it."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "ivr"
    # as written: a ${NAME} read from the environment where it is used (ivr.settings.config.expand_env)
    secret: str = field(default=DEFAULT_SECRET, repr=False)
    permit: tuple[str, ...] = LOCAL_ONLY  # who may log in (manager.conf permit)

    @property
    def secret_variable(self) -> str:
        """The environment variable that holds the secret."""
        return self.secret[2:-1]  # "${NAME}": checked so when config.yaml is read


@dataclass(frozen=True)
class CallbackSettings:
    """How a call-back is dialled: the contract with the dialplan in ivr.asterisk.callback."""

    channel: str = "Local/{number}@testbed-callee"  # dial string; {number} is the customer's number
    context: Optional[str] = "ivr-callback"  # None: the Originate runs Queue(<queue>) itself
    caller_id: Optional[str] = None  # what the customer's phone shows
    timeout: float = 30.0  # seconds the customer's phone rings


@dataclass(frozen=True)
class NodeSettings:
    """One Asterisk server known to the engine: its name, its AMI account, and the FastAGI
    address its dialplan sends calls to (None: the engine's own `asterisk.agi`)."""

    name: str
    ami: AmiSettings
    agi_host: Optional[str] = None
    agi_port: Optional[int] = None

    def agi_address(self, default: AgiSettings) -> tuple[str, int]:
        """Where this node's dialplan sends calls."""
        return self.agi_host or default.host, self.agi_port or default.port


@dataclass(frozen=True)
class AsteriskSettings:
    """The whole `asterisk:` section."""

    agi: AgiSettings = field(default_factory=AgiSettings)
    # None: neither `ami:` nor `nodes:`; live calls are served without the AMI. With
    # `nodes:`, the first node's account (what code that knows one Asterisk uses)
    ami: Optional[AmiSettings] = None
    callback: CallbackSettings = field(default_factory=CallbackSettings)
    language: Optional[str] = None  # None: the first language of prompts.voices
    nodes: tuple[NodeSettings, ...] = ()  # as written under `nodes:`; () when there is none

    @property
    def manager(self) -> AmiSettings:
        """The account manager.conf is written for: the `ami:` section's, else the defaults."""
        return self.ami or AmiSettings()

    @property
    def all_nodes(self) -> tuple[NodeSettings, ...]:
        """Every Asterisk the engine knows, the first one first: `nodes:`, or the one of `ami:`
        (named `default`), or none."""
        if self.nodes:
            return self.nodes
        return (NodeSettings(DEFAULT_NODE, self.ami),) if self.ami is not None else ()

    @property
    def multi_node(self) -> bool:
        """Whether config.yaml names its Asterisks (`nodes:`): each call then says which it came from."""
        return bool(self.nodes)

    def node(self, name: Optional[str]) -> Optional[NodeSettings]:
        """The node of that name, or None."""
        return next((n for n in self.all_nodes if n.name == name), None)


def parse_asterisk_settings(value: Any, findings: Findings) -> AsteriskSettings:
    data = section_fields(value, ("asterisk",), FIELDS, "{agi: {host: 127.0.0.1, port: 4573}}", findings)
    if data is None:
        return AsteriskSettings()
    settings: dict[str, Any] = {
        "agi": _agi(data.get("agi"), findings),
        "callback": _callback(data.get("callback"), findings),
    }
    if data.get("ami") not in (None, {}):  # an empty section is no AMI, as no section
        settings["ami"] = _ami(data["ami"], findings)
    if data.get("nodes") is not None:
        if data.get("ami") not in (None, {}):
            findings.error(("asterisk", "nodes"), "asterisk has both ami and nodes: `ami:` is the one Asterisk of a "
                           "single-node site; with nodes, write each Asterisk's ami under its name in nodes", at_key=True)
        nodes = _nodes(data["nodes"], findings)
        if nodes:
            settings["nodes"] = nodes
            settings["ami"] = nodes[0].ami
    language = data.get("language")
    if language is not None:
        if not isinstance(language, str) or not LANGUAGE_CODE.fullmatch(language):
            findings.error(("asterisk", "language"), f"asterisk language must be a language code such as pl or en, not {describe(language)}")
        else:
            settings["language"] = language
    return AsteriskSettings(**settings)


def _agi(value: Any, findings: Findings) -> AgiSettings:
    data = section_fields(value, ("asterisk", "agi"), AGI_FIELDS, "{host: 127.0.0.1, port: 4573}", findings)
    if data is None:
        return AgiSettings()
    settings = _address(data, ("asterisk", "agi"), "AGI", findings)
    if "shutdown_grace" in data:
        path = ("asterisk", "agi", "shutdown_grace")
        seconds = duration_seconds(data["shutdown_grace"], path, "AGI shutdown_grace", "10s", findings)
        if seconds is not None and seconds > MAX_GRACE:
            findings.error(path, f"AGI shutdown_grace must be at most {MAX_GRACE:g}s (10m): a service manager kills a "
                           f"process that takes longer to stop, and its calls are then closed only at the next start")
        elif seconds is not None:
            settings["shutdown_grace"] = seconds
    if "metrics_host" in data:
        host = data["metrics_host"]
        if not isinstance(host, str) or not _HOST.fullmatch(host):
            findings.error(("asterisk", "agi", "metrics_host"),
                           f"AGI metrics_host must be an IP address such as 127.0.0.1, not {describe(host)}")
        else:
            settings["metrics_host"] = host
    if "metrics_port" in data:
        port = port_number(data["metrics_port"], ("asterisk", "agi", "metrics_port"), "AGI metrics", findings)
        if port is not None and port == settings.get("port", AgiSettings.port):
            findings.error(("asterisk", "agi", "metrics_port"),
                           f"AGI metrics_port must differ from the FastAGI port ({port}): they are two servers")
        elif port is not None:
            settings["metrics_port"] = port
    return AgiSettings(**settings)


def _ami(value: Any, findings: Findings, path: tuple = ("asterisk", "ami")) -> Optional[AmiSettings]:
    data = section_fields(value, path, AMI_FIELDS, '{host: 127.0.0.1, port: 5038, username: ivr, secret: "${IVR_AMI_SECRET}"}', findings)
    if data is None:
        return None
    settings = _address(data, path, "AMI", findings)
    if "username" in data:
        username = data["username"]
        if not isinstance(username, str) or not NAME.fullmatch(username):
            findings.error(path + ("username",), f"AMI username must be {NAME_RULE}, not {describe(username)}")
        elif username.lower() == "general":
            findings.error(path + ("username",), 'AMI username cannot be "general": that is the [general] section of manager.conf')
        else:
            settings["username"] = username
    if "secret" in data:
        secret = secret_reference(data["secret"], path + ("secret",), "AMI secret", DEFAULT_SECRET, findings)
        if secret is not None:
            settings["secret"] = secret
    if "permit" in data:
        permit = data["permit"]
        items = permit if isinstance(permit, list) else [permit]
        bad = [i for i, item in enumerate(items) if not isinstance(item, str) or not _PERMIT.fullmatch(item)]
        for i in bad:
            where = path + ("permit", i) if isinstance(permit, list) else path + ("permit",)
            findings.error(where, f"AMI permit must be addresses such as 127.0.0.1/255.255.255.255, not {describe(items[i])}")
        if not bad:
            settings["permit"] = tuple(items)
    return AmiSettings(**settings)


def _nodes(value: Any, findings: Findings) -> tuple[NodeSettings, ...]:
    """`nodes:`: each Asterisk by name, with its AMI (required) and its dialplan's FastAGI address."""
    path = ("asterisk", "nodes")
    example = '{pbx-a: {ami: {host: 10.0.0.11, username: ivr, secret: "${IVR_AMI_SECRET}"}}}'
    if not isinstance(value, dict) or not value:
        findings.error(path, f"asterisk nodes must be a mapping of node names to their settings, such as {example}, "
                       f"not {describe(value)}")
        return ()
    nodes: list[NodeSettings] = []
    seen: dict[tuple[str, int], str] = {}
    for name, body in value.items():
        where = path + (name,)
        if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > MAX_NODE_NAME:
            findings.error(where, f"a node name must be {NAME_RULE}, at most {MAX_NODE_NAME} characters, "
                           f"not {describe(name)}", at_key=True)
            continue
        data = section_fields(body, where, NODE_FIELDS, '{ami: {host: 10.0.0.11, port: 5038}}', findings)
        if data is None:
            if body is None:
                findings.error(where, f'node "{name}" needs its ami: {{host: ..., port: 5038, username: ivr, '
                               'secret: "${IVR_AMI_SECRET}"}', at_key=True)
            continue
        if data.get("ami") in (None, {}):
            findings.error(where, f'node "{name}" needs its ami: {{host: ..., port: 5038, username: ivr, '
                           'secret: "${IVR_AMI_SECRET}"}', at_key=True)
            continue
        ami = _ami(data["ami"], findings, where + ("ami",))
        if ami is None:
            continue
        address = (ami.host, ami.port)
        if address in seen:
            findings.error(where + ("ami",), f'node "{name}" has the AMI of node "{seen[address]}" '
                           f"({ami.host}:{ami.port}): one Asterisk is one node")
            continue
        seen[address] = name
        agi: dict[str, Any] = {}
        agi_data = section_fields(data.get("agi"), where + ("agi",), NODE_AGI_FIELDS, "{host: 10.0.0.20, port: 4573}",
                                  findings)
        if agi_data is not None:
            agi = {f"agi_{k}": v for k, v in _address(agi_data, where + ("agi",), "AGI", findings).items()}
        nodes.append(NodeSettings(name, ami, **agi))
    return tuple(nodes)


def _callback(value: Any, findings: Findings) -> CallbackSettings:
    path = ("asterisk", "callback")
    data = section_fields(value, path, CALLBACK_FIELDS, '{channel: "PJSIP/{number}@trunk", context: ivr-callback}', findings)
    if data is None:
        return CallbackSettings()
    settings: dict[str, Any] = {}
    if "channel" in data:
        channel = data["channel"]
        if not isinstance(channel, str) or "{number}" not in channel or _CONTROL.search(channel):
            findings.error(path + ("channel",), "call-back channel must be a dial string holding {number}, where the customer's "
                           f"number goes, such as PJSIP/{{number}}@trunk, not {describe(channel)}")
        else:
            settings["channel"] = channel
    if "context" in data:
        context = data["context"]
        if context is not None and (not isinstance(context, str) or not NAME.fullmatch(context)):
            findings.error(path + ("context",), f"call-back context must be {NAME_RULE}, or null to run Queue() directly, "
                           f"not {describe(context)}")
        else:
            settings["context"] = context
    caller_id = data.get("caller_id")
    if caller_id is not None:
        if not isinstance(caller_id, str) or _CONTROL.search(caller_id):
            findings.error(path + ("caller_id",), f"call-back caller_id must be text on one line, such as '\"Shop\" <225550000>', "
                           f"not {describe(caller_id)}")
        else:
            settings["caller_id"] = caller_id
    if "timeout" in data:
        seconds = duration_seconds(data["timeout"], path + ("timeout",), "call-back timeout", "30s", findings)
        if seconds is not None:
            settings["timeout"] = seconds
    return CallbackSettings(**settings)


def _address(data: dict, path: tuple, what: str, findings: Findings) -> dict[str, Any]:
    """The host and port of an `agi:` or `ami:` section, as far as they are written and right."""
    settings: dict[str, Any] = {}
    if "host" in data:
        host = data["host"]
        if not isinstance(host, str) or not _HOST.fullmatch(host):
            findings.error(path + ("host",), f"{what} host must be a host name or IP address, not {describe(host)}")
        else:
            settings["host"] = host
    if "port" in data:
        port = port_number(data["port"], path + ("port",), what, findings)
        if port is not None:
            settings["port"] = port
    return settings
