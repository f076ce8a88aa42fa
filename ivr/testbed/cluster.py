"""The multi-node test bed: Kamailio, two (or N) Asterisk 22 nodes, HAProxy, on this machine.

    SIP caller ──▶ Kamailio :5080 ──dispatcher, OPTIONS probes──▶ ast1 :5071 ─┐  FastAGI
                   (round-robin, fail-over)                     ▶ ast2 :5072 ─┴─▶ HAProxy :4590
                                                                                 │ leastconn,
                          `ivr serve` e1 :4591 (metrics :9591) ◀─────────────────┤ /health/ready
                          `ivr serve` e2 :4592 (metrics :9592) ◀─────────────────┘

Every node is a `Testbed` with a `Node` (ivr.testbed.files): the same sid root, folders,
ports and systemname of its own, the same bind-mounted prompts and recordings folders
(one shared folder, as NFS would be). The installation names the nodes as a site does
(config.yaml `asterisk.nodes`, docs/nodes.md: `nodes_section()` writes that block for a
layout): each node's files are what `ivr asterisk-config` writes for that node, so its
dialplan sends calls to HAProxy's frontend naming itself (`node=ast1`) and its manager
listens on the node's AMI port. The engines are not started here: they are `ivr serve` processes of the
installation (whoever uses the cluster starts them on the layout's ports, so that it can
stop or kill them); HAProxy checks them and takes a call to one as soon as one is ready.

`Cluster.start()` boots the nodes, HAProxy and Kamailio and waits until Kamailio's probes
find every node; `stop()` stops what it started. docs/deployment.md is the same layout
for production.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ivr.errors import AsteriskError
from ivr.settings.config import Config
from ivr.testbed.files import Node
from ivr.testbed.haproxy import Engine, HAProxy
from ivr.testbed.kamailio import Destination, Kamailio
from ivr.testbed.server import ROOT, STATE, Testbed, build_root

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Layout:
    """Where each part of the multi-node test bed listens (all on 127.0.0.1). The ports are
    apart from the single test bed's (SIP 5070, AMI 5038, RTP 20000-20999, AGI 4573), so
    both may run at once."""

    nodes: tuple[Node, ...] = (Node("ast1", 5071, 5039, (21000, 21999)), Node("ast2", 5072, 5040, (22000, 22999)))
    engines: tuple[Engine, ...] = (Engine("e1", "127.0.0.1", 4591, 9591), Engine("e2", "127.0.0.1", 4592, 9592))
    sip_port: int = 5080  # Kamailio: where callers (SIPp) send their calls
    agi_port: int = 4590  # HAProxy: where every node's dialplan sends its calls

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names) or len({e.name for e in self.engines}) != len(self.engines):
            raise AsteriskError(f"the nodes and engines of a layout need names of their own: {names}")


def nodes_section(layout: Layout, ami: Mapping[str, Any]) -> dict[str, Any]:
    """config.yaml's `asterisk.nodes` for the layout: each node by name with `ami` (the
    account of `ami`, on the node's AMI port) and `agi` (HAProxy's frontend, where the node's
    dialplan sends its calls). Every engine of the cluster has the same block."""
    return {node.name: {"ami": {**ami, "port": node.ami_port}, "agi": {"host": "127.0.0.1", "port": layout.agi_port}}
            for node in layout.nodes}


def check_nodes(config: Config, layout: Layout) -> None:
    """An installation with `asterisk.nodes` names every node of the layout, on its AMI port."""
    for node in layout.nodes:
        settings = config.asterisk.node(node.name)
        if settings is None or not config.asterisk.multi_node:
            raise AsteriskError(f"config.yaml's asterisk.nodes has no node {node.name!r} of the test bed's layout "
                                f"(it has {', '.join(n.name for n in config.asterisk.all_nodes) or 'none'})")
        if settings.ami.port != node.ami_port:
            raise AsteriskError(f"config.yaml's asterisk.nodes.{node.name}.ami.port is {settings.ami.port}; the "
                                f"test bed's node {node.name} has its manager on {node.ami_port}")


def node_side(config: Config, node: Node, agi_host: str, agi_port: int) -> Config:
    """An installation of one Asterisk (`ami:`, no `nodes:`) as one node of the layout runs
    it: its calls to `agi_host:agi_port`, its manager on the node's own AMI port (the
    benchmark's one-node layout; an installation with `nodes:` needs none of this)."""
    asterisk = config.asterisk
    return replace(config, asterisk=replace(
        asterisk, agi=replace(asterisk.agi, host=agi_host, port=agi_port),
        ami=replace(asterisk.manager, port=node.ami_port)))


@dataclass
class Cluster:
    """The nodes, HAProxy and Kamailio of one layout, for one installation."""

    config_path: Path  # the installation's config.yaml (its recordings and prompts folders are mounted)
    # the Asterisk side of it (e.g. the members of each queue in the test bed); with
    # `asterisk.nodes`, every node of the layout named there (`nodes_section()`)
    asterisk_config: Config
    layout: Layout = field(default_factory=Layout)
    folder: Path = STATE / "cluster"  # configs and logs of Kamailio and HAProxy
    root: Path = ROOT
    log: Log = _quiet
    nodes: dict[str, Testbed] = field(default_factory=dict, init=False)
    haproxy: Optional[HAProxy] = field(default=None, init=False)
    kamailio: Optional[Kamailio] = field(default=None, init=False)

    def start(self) -> "Cluster":
        build_root(self.root, self.log)
        named = self.asterisk_config.asterisk.multi_node
        if named:
            check_nodes(self.asterisk_config, self.layout)
        try:
            for node in self.layout.nodes:
                bed = Testbed(self.config_path, root=self.root, log=self.log, node=node)
                # with nodes, the Testbed writes the node's own files (ivr.asterisk.dialplan.generate)
                bed.config = self.asterisk_config if named else \
                    node_side(self.asterisk_config, node, "127.0.0.1", self.layout.agi_port)
                self.nodes[node.name] = bed
            self._boot_nodes()
            self.haproxy = HAProxy(self.folder / "haproxy", self.layout.engines, port=self.layout.agi_port).start()
            destinations = [Destination(n.name, "127.0.0.1", n.sip_port) for n in self.layout.nodes]
            self.kamailio = Kamailio(self.folder / "kamailio", destinations, port=self.layout.sip_port).start()
            self.kamailio_waits({n.name: True for n in self.layout.nodes}, 15)
        except BaseException:
            self.stop()
            raise
        self.log(f"multi-node test bed: {len(self.nodes)} Asterisk nodes behind Kamailio on "
                 f"127.0.0.1:{self.layout.sip_port}, FastAGI through HAProxy on 127.0.0.1:{self.layout.agi_port}")
        return self

    def _boot_nodes(self) -> None:
        """Every node at once (each boot waits mostly on Asterisk's module loading), after
        the first one made the shared mounts."""
        beds = list(self.nodes.values())
        beds[0].mount()
        failures: list[BaseException] = []

        def boot(bed: Testbed) -> None:
            try:
                bed.start()
                if not bed.started_here:
                    raise AsteriskError(f"node {bed.node.name if bed.node else '?'} was running already (from an "
                                        f"earlier run?); stop it first: its pid is in {bed.state / 'asterisk.pid'}")
            except BaseException as exc:  # noqa: BLE001 - raised below, in the caller's thread
                failures.append(exc)

        threads = [threading.Thread(target=boot, args=(bed,), name=f"boot-{name}") for name, bed in self.nodes.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]

    def kamailio_waits(self, want: dict[str, bool], timeout: float) -> float:
        """Until Kamailio's dispatcher has each node active (True) or not (False); the seconds it took."""
        assert self.kamailio is not None
        started = time.monotonic()
        while True:
            now = self.kamailio.active()
            if all(now.get(name) == state for name, state in want.items()):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AsteriskError(f"Kamailio's dispatcher has {now}, not {want}, after {timeout:g}s:\n"
                                    f"{self.kamailio.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Kamailio, HAProxy, then every node this cluster started (each its own Asterisk)."""
        for part in (self.kamailio, self.haproxy):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        for bed in reversed(list(self.nodes.values())):
            if bed.started_here:
                bed.stop()
        for bed in self.nodes.values():  # the first node made the shared mounts; the last one is down now
            bed.release_mounts()

    def node_of(self, uniqueid: str) -> str:
        """The node a call ran on, from its uniqueid (`ast1-1733390000.12`)."""
        name = uniqueid.split("-", 1)[0]
        if name not in self.nodes:
            raise AsteriskError(f"uniqueid {uniqueid!r} names no node of the cluster ({', '.join(self.nodes)})")
        return name

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

