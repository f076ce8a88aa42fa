"""`ivr web`'s health and Prometheus metrics, on the web app's own port.

    /health/live    200 "live" while the app answers (no database)
    /health/ready   200 when the database answers a `SELECT 1`, 503 when not; where the
                    database is and the driver's reason only to whoever may read /metrics
    /metrics        the recordings index (its lag, passes, failures, files pending and in
                    error), the prune of the webhook outbox (rows deleted, runs, failures,
                    the last success) and the process; to this host, or with the token of
                    IVR_METRICS_TOKEN (ivr.metrics_access)

The health paths are public (a balancer asks them without logging in); the metrics are
refused to any other client, whatever its session, so an account in the QA app is not a
way to them. Behind a reverse proxy, config.yaml web.proxies must count it: the client's
address is then the forwarded one, and the proxy's own loopback address opens nothing.
Each app has its own registry (never prometheus-client's global one).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ivr.metrics_access import REFUSED, may_read_metrics, metrics_token
from ivr.store.db import safe_url
from ivr.web.context import context
from ivr.web.housekeeping import IndexWatch, PruneWatch
from ivr.web.security import public

bp = Blueprint("health", __name__)
TEXT = "text/plain; charset=utf-8"


class WebMetrics:
    """The registry of one app, and what a scrape reads (`index`: the background index's
    watch; None when this process runs no index; `outbox`: the background prune's, likewise)."""

    def __init__(self, index: Optional[IndexWatch], outbox: Optional[PruneWatch] = None):
        self.index = index
        self.outbox = outbox
        self.token = metrics_token()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_IndexCollector(self))
        self.registry.register(_PruneCollector(self))
        ProcessCollector(registry=self.registry)


class _IndexCollector:
    def __init__(self, metrics: WebMetrics):
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        watch = self.metrics.index
        yield GaugeMetricFamily("ivr_recordings_index_enabled", "1 when this process indexes recordings in the "
                                "background (ivr web --index-every), else 0", value=1 if watch else 0)
        if watch is None:
            return
        yield GaugeMetricFamily("ivr_recordings_index_lag_seconds", "Seconds since the start of the last index "
                                "pass that finished: recordings finished before then are indexed (before any "
                                "pass: since the start)", value=watch.lag())
        yield GaugeMetricFamily("ivr_recordings_index_pending", "Recordings the last pass left as still being "
                                "written", value=watch.pending)
        yield GaugeMetricFamily("ivr_recordings_index_errors", "Recordings the last pass could not index",
                                value=watch.errors)
        yield GaugeMetricFamily("ivr_recordings_index_last_pass_seconds", "How long the last pass that finished "
                                "took", value=watch.last_seconds)
        for name, doc, value in (("ivr_recordings_index_passes", "Index passes that finished", watch.passes),
                                 ("ivr_recordings_index_failures", "Index passes that failed", watch.failures),
                                 ("ivr_recordings_indexed", "Recordings indexed", watch.indexed)):
            yield CounterMetricFamily(name, doc, value=value)


class _PruneCollector:
    def __init__(self, metrics: WebMetrics):
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        watch = self.metrics.outbox
        yield GaugeMetricFamily("ivr_webhook_prune_enabled", "1 when this process deletes the webhook outbox's "
                                "old delivered rows in the background (ivr web --purge-every), else 0",
                                value=1 if watch else 0)
        if watch is None:
            return
        for name, doc, value in (("ivr_webhook_pruned", "Delivered webhook rows deleted", watch.deleted),
                                 ("ivr_webhook_prune_runs", "Prunes of the webhook outbox that finished", watch.runs),
                                 ("ivr_webhook_prune_failures", "Prunes of the webhook outbox that failed",
                                  watch.failures)):
            yield CounterMetricFamily(name, doc, value=value)
        if watch.last_success is not None:
            yield GaugeMetricFamily("ivr_webhook_prune_last_success_timestamp_seconds", "When the last prune of "
                                    "the webhook outbox finished (Unix time)", value=watch.last_success)


def install(app: Flask, index: Optional[IndexWatch] = None, outbox: Optional[PruneWatch] = None) -> None:
    """The health and metrics paths on `app`."""
    app.extensions["ivr_metrics"] = WebMetrics(index, outbox)
    app.register_blueprint(bp)


@bp.get("/health/live")
@public
def live() -> Response:
    return Response("live\n", mimetype=TEXT)


@bp.get("/health/ready")
@public
def ready() -> Response:
    engine = context().engine
    # where the database is, and the driver's words, only to those who may read the metrics
    told = _may_read_metrics()
    where = f" {safe_url(engine.url)}" if told else ""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return Response(f"not ready: the database{where} cannot be reached{f' ({reason})' if told else ''}\n",
                        status=503, mimetype=TEXT)
    return Response(f"ready: the database{where} answers\n", mimetype=TEXT)


def _may_read_metrics() -> bool:
    state: Any = current_app.extensions["ivr_metrics"]
    return may_read_metrics(request.remote_addr, request.headers.get("Authorization"), state.token)


@bp.get("/metrics")
@public  # not to everyone: the client's address or token decides, below
def metrics() -> Response:
    if not _may_read_metrics():
        return Response(f"{REFUSED}\n", status=403, mimetype=TEXT)
    state: Any = current_app.extensions["ivr_metrics"]
    return Response(generate_latest(state.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
