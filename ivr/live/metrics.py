"""`ivr serve`'s Prometheus metrics and its readiness: every figure defined here, once.

Each runtime has a registry of its own (never prometheus-client's global one), so tests can
run several runtimes in one process. Almost every figure is read from its source when
Prometheus scrapes, not pushed as it changes: calls in progress are the FastAGI server's
running calls, the writer's figures its `stats`, AMI's its client's state, the flows'
generation and failed reloads the reloader's. What must be counted as it happens is counted
on the event loop's thread with plain integers (calls started and ended by outcome, from the
events on their way to the writer; each AGI command's round trip, `ivr.channels.agi_timing`):
no lock and no system call on the call path. prometheus-client's own metric objects take a
lock per update, so none is used there.

Ready (`/health/ready`, what a balancer asks) is false, with the reason, while the engine
cannot take calls: before the FastAGI server listens, while no flows are loaded, and from
the stop's first moment (SIGTERM, SIGINT) through its grace period. The database and AMI do
not make it false: calls are served without them (the spool keeps their records; sensitive
input stops the recorder instead of muting it); the body says so.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from ivr.channels.agi_timing import CommandTimes
from ivr.events import CALL_STARTED, OUTCOME, Event, Outcome

CONTENT_TYPE = CONTENT_TYPE_LATEST


class CallCounts:
    """Calls started and ended by outcome, counted from the events of every call as they go
    to the writer (on the event loop's thread)."""

    def __init__(self) -> None:
        self.started = 0
        # every outcome listed from the start, so a rate over any of them exists at once
        self.ended: dict[str, int] = {outcome.value: 0 for outcome in Outcome}

    def counting(self, sink: Optional[Any]) -> Any:
        """An event sink that counts, then hands each event on to `sink` (when there is one)."""
        ended = self.ended

        def count(event: Event) -> None:
            kind = event.type
            if kind == OUTCOME:
                outcome = str(event.data.get("outcome"))
                ended[outcome] = ended.get(outcome, 0) + 1
            elif kind == CALL_STARTED:
                self.started += 1
            if sink is not None:
                sink(event)

        return count


class ServeMetrics:
    """The registry of one runtime and the collector that reads it (`runtime`: an
    `ivr.live.serve.Runtime`, read only)."""

    def __init__(self, runtime: Any):
        self.runtime = runtime
        self.calls = CallCounts()
        self.timings = CommandTimes()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_RuntimeCollector(self))
        # the process's memory, CPU and open files, read from /proc at scrape time
        ProcessCollector(registry=self.registry)

    def exposition(self) -> bytes:
        """The text Prometheus scrapes."""
        return generate_latest(self.registry)

    def ready(self) -> tuple[bool, str]:
        """Can the engine take a call now? And a line saying why (not)."""
        runtime = self.runtime
        server = runtime.server
        in_progress = len(server.active) if server is not None else 0
        calls = f"{in_progress} call{'' if in_progress == 1 else 's'} in progress"
        if runtime.stopping:
            return False, (f"stopping ({runtime.stop_reason}): no new calls; {calls} "
                           f"{'has' if in_progress == 1 else 'have'} up to {runtime.grace:g} s to finish")
        if not runtime.reloader.loaded:
            return False, "no flows are loaded"
        listener = server.server if server is not None else None
        if listener is None or not listener.is_serving():
            return False, "starting: the FastAGI server is not listening yet"
        notes = [f"flows generation {runtime.reloader.generation}", calls]
        down = [node for node, client in self.ami_clients() if not client.connected]
        if down == [None]:
            notes.append("AMI not connected (calls are served without it)")
        elif down:
            notes.append(f"AMI of node{'' if len(down) == 1 else 's'} {', '.join(map(str, down))} not connected "
                         f"(their calls are served without it)")
        writer = self.writer()
        if writer is not None and not writer.stats.healthy:
            notes.append("the database is failing (call records are kept in the spool)")
        return True, f"taking calls on {server.host}:{server.port}: {', '.join(notes)}"

    # --- the runtime's parts, found by what they are -------------------------------------------
    def writer(self) -> Optional[Any]:
        for part in self.runtime.extras:  # the writer's part (and the heartbeat's, which uses the same)
            writer = getattr(part, "writer", None)
            if writer is not None:
                return writer
        return None

    def webhook(self) -> Optional[Any]:
        """The CRM webhook's deliverer (ivr.live.webhook), when config.yaml has crm.webhook."""
        return next((part for part in self.runtime.extras if type(part).__name__ == "WebhookDeliverer"), None)

    def ami_client(self) -> Optional[Any]:
        manager = self.runtime.manager
        client = getattr(manager, "client", None)
        return client if client is not None and hasattr(client, "connected") else None

    def ami_clients(self) -> list[tuple[Optional[str], Any]]:
        """(node, AMI client) of each Asterisk: the node's name with several (asterisk.nodes),
        None for the one of `ami:`."""
        routes = getattr(self.runtime, "nodes", None)
        managers = getattr(routes, "managers", None)
        if managers:
            return [(name, part.client) for name, part in managers.items()
                    if hasattr(getattr(part, "client", None), "connected")]
        client = self.ami_client()
        return [(None, client)] if client is not None else []


class _RuntimeCollector:
    """Reads the runtime's figures when the registry is collected (a scrape)."""

    def __init__(self, metrics: ServeMetrics):
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        metrics = self.metrics
        runtime = metrics.runtime
        server = runtime.server

        ready, _ = metrics.ready()
        yield GaugeMetricFamily("ivr_ready", "1 while the engine takes new calls (/health/ready), else 0",
                                value=1 if ready else 0)
        yield GaugeMetricFamily("ivr_calls_in_progress", "Calls the engine is running now",
                                value=len(server.active) if server is not None else 0)
        started = CounterMetricFamily("ivr_calls_started", "Calls started on this engine since it started")
        started.add_metric([], metrics.calls.started)
        yield started
        ended = CounterMetricFamily("ivr_calls_ended", "Calls ended on this engine since it started, by outcome",
                                    labels=["outcome"])
        for outcome, count in sorted(metrics.calls.ended.items()):
            ended.add_metric([outcome], count)
        yield ended

        latency = HistogramMetricFamily(
            "ivr_agi_command_seconds",
            "AGI commands from the line sent to Asterisk's reply, by command (a prompt's STREAM FILE lasts as long "
            "as it plays, a Queue EXEC as the caller waits)", labels=["command"])
        for verb, buckets, total in metrics.timings.histograms():
            latency.add_metric([verb], buckets, total)
        yield latency
        if server is not None:
            refused = CounterMetricFamily("ivr_agi_connections_refused",
                                          "FastAGI connections closed for breaking a limit or a deadline")
            refused.add_metric([], sum(server.refusals.total.values()))
            yield refused

        generation = GaugeMetricFamily("ivr_flows_generation",
                                       "Flow sets loaded since the start (1: the first; each reload adds one)",
                                       value=runtime.reloader.generation)
        yield generation
        failed = CounterMetricFamily("ivr_flows_reload_failures",
                                     "Reloads refused for errors in the flows or config.yaml (the running flows stayed)")
        failed.add_metric([], runtime.reloader.failures)
        yield failed

        writer = metrics.writer()
        if writer is not None:
            stats = writer.stats
            yield GaugeMetricFamily("ivr_writer_queue_depth", "Call-record items waiting for the writer's thread",
                                    value=stats.queued)
            yield GaugeMetricFamily("ivr_writer_pending", "Call-record items taken, waiting to be written",
                                    value=stats.pending)
            yield GaugeMetricFamily("ivr_writer_spooled", "Call records kept in the spool on disk, waiting for "
                                    "the database", value=stats.spooled)
            yield GaugeMetricFamily("ivr_writer_healthy", "1 when the writer's last write succeeded, else 0",
                                    value=1 if stats.healthy else 0)
            for name, doc, value in (
                    ("ivr_writer_failures", "Failed write attempts of the call-records writer", stats.failures),
                    ("ivr_writer_written", "Call-record items committed to the database", stats.written),
                    ("ivr_writer_dropped", "Call-record items given up (queue full, refused by the database)",
                     stats.dropped)):
                yield CounterMetricFamily(name, doc, value=value)

        webhook = metrics.webhook()
        if webhook is not None:
            yield GaugeMetricFamily("ivr_webhook_backlog", "Ended calls waiting to be posted to the CRM webhook "
                                    "(all engines' outbox, as of this engine's last look)", value=webhook.backlog)
            for name, doc, value in (
                    ("ivr_webhook_deliveries", "Calls this engine posted to the CRM webhook (a 2xx answer)",
                     webhook.delivered),
                    ("ivr_webhook_failures", "POSTs to the CRM webhook that failed (tried again later)",
                     webhook.failures)):
                yield CounterMetricFamily(name, doc, value=value)

        clients = metrics.ami_clients()
        if clients:
            # one Asterisk (`ami:`): no label, as ever; several: a `node` label each
            labels = ["node"] if clients[0][0] is not None else []
            connected = GaugeMetricFamily("ivr_ami_connected", "1 while the AMI connection is logged in, else 0",
                                          labels=labels)
            reconnects = CounterMetricFamily("ivr_ami_reconnects", "AMI logins after the first one (each a "
                                             "connection lost and made again)", labels=labels)
            read = CounterMetricFamily("ivr_ami_events", "AMI events the engine read (queue events, hang-ups "
                                       "of queued callers, call-back results)", labels=labels)
            unused = CounterMetricFamily("ivr_ami_events_unused", "AMI events Asterisk sent that the engine does "
                                         "not read: its AMI user lacks the event filter", labels=labels)
            for node, client in clients:
                values = [node] if labels else []
                connected.add_metric(values, 1 if client.connected else 0)
                reconnects.add_metric(values, max(client.connections - 1, 0))
                read.add_metric(values, client.events_read)
                unused.add_metric(values, client.events_unused)
            yield connected
            yield reconnects
            yield read
            yield unused


def parse_exposition(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of an exposition by (name, sorted labels): what tests and tools read."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples
