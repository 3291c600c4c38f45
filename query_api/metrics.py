"""`GET /metrics` (Prometheus text format) and `GET /readyz`, and the request timer behind the API's latency
histogram.

The pipeline's figures (`epochstream.pipeline_status`) are read at scrape time, from the streams broker,
the queue broker and the read model: the API holds no counters of the workers'. Drain batch durations are
counted by the workers themselves in a hash on the queue broker (`epochstream.drain_metrics`), so every
worker host's batches are in one histogram whichever API host is scraped. The request latency histogram
is this API process's own (one series per route template, never per run id). Broker clients have short
timeouts: a shard that does not answer costs a scrape 2 s and shows as `epochstream_broker_up 0`.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epochstream.broker import connect, connect_queue, resolve_queue_url, resolve_url
from epochstream.pipeline_status import BROKER_ERRORS, PipelineStatus, gather
from epochstream.readmodel.reader import ReadModelReader
from epochstream.settings import Settings

BROKER_TIMEOUT_S = 2.0
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED = "unmatched"


class Brokers:
    """The API's clients of the streams and queue brokers, made on first use and again after a failure."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._streams = self._queue = None

    def streams(self):
        with self._lock:
            if self._streams is None:
                self._streams = connect(resolve_url(self.settings), socket_timeout=BROKER_TIMEOUT_S,
                                        socket_connect_timeout=BROKER_TIMEOUT_S)
            return self._streams

    def queue(self):
        with self._lock:
            if self._queue is None:
                url = resolve_queue_url(self.settings)
                self._queue = connect_queue(url, socket_timeout=BROKER_TIMEOUT_S,
                                            socket_connect_timeout=BROKER_TIMEOUT_S)
            return self._queue

    def forget(self) -> None:
        """After an error: the next call connects anew (and a cluster client reads its slot map again)."""
        with self._lock:
            for client in (self._streams, self._queue):
                if client is not None:
                    with contextlib.suppress(Exception):  # it is broken already
                        client.close()
            self._streams = self._queue = None


class PipelineCollector:
    """A Prometheus collector that reads the pipeline's figures at every scrape."""

    def __init__(self, settings: Settings, reader: ReadModelReader, brokers: Brokers):
        self.settings, self.reader, self.brokers = settings, reader, brokers

    def status(self) -> PipelineStatus:
        errors = {}
        streams = queue = None
        try:
            streams = self.brokers.streams()
        except Exception as exc:  # noqa: BLE001 - no broker (unresolvable, misconfigured) is a figure, not a 500
            errors["broker_error"] = f"{type(exc).__name__}: {exc}"
        try:
            queue = self.brokers.queue()
        except Exception as exc:  # noqa: BLE001
            errors["queue_error"] = f"{type(exc).__name__}: {exc}"
        status = gather(self.settings, streams, queue, self.reader)
        for name, text in errors.items():
            setattr(status, name, text)
        if status.broker_error or status.queue_error:
            self.brokers.forget()
        return status

    def collect(self):
        status = self.status()
        yield from pipeline_families(status)


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def pipeline_families(status: PipelineStatus) -> list:
    """Pure: the Prometheus families of one `PipelineStatus`."""
    up = [_gauge("epochstream_broker_up", "1 when the streams broker answered this scrape"),
          _gauge("epochstream_queue_broker_up", "1 when the queue broker (RQ, drain locks) answered this scrape"),
          _gauge("epochstream_read_model_up", "1 when the read model could be read this scrape")]
    for family, error in zip(up, (status.broker_error, status.queue_error, status.read_model_error), strict=True):
        family.add_metric([], 0.0 if error else 1.0)
    families = list(up)
    per_partition = {
        "epochstream_stream_length": ("Entries in the partition's stream (acknowledged ones until trimmed)",
                                      lambda p: p.length),
        "epochstream_pending_entries": ("Entries delivered to a drain and not acknowledged yet", lambda p: p.pending),
        "epochstream_oldest_pending_age_seconds": ("Age of the oldest pending entry (0: none pending)",
                                                   lambda p: p.oldest_pending_age_s or 0.0),
        "epochstream_ingest_lag_seconds": ("Age of the oldest entry not applied to the read model yet "
                                           "(0: caught up)", lambda p: p.ingest_lag_s),
        "epochstream_newest_applied_age_seconds": ("Now minus the broker time of the newest entry applied "
                                                   "(grows while nothing is published too)",
                                                   lambda p: p.newest_applied_age_s),
    }
    if status.broker_error is None:
        for name, (doc, value) in per_partition.items():
            family = _gauge(name, doc, ["partition"])
            for p in status.partitions:
                figure = value(p)
                if figure is not None:
                    family.add_metric([str(p.partition)], float(figure))
            families.append(family)
        if status.dead_letters is not None:
            dead = _gauge("epochstream_dead_letters", "Entries in the dead-letter stream")
            dead.add_metric([], float(status.dead_letters))
            families.append(dead)
    if status.events_stored is not None and status.read_model_error is None:
        stored = _gauge("epochstream_events_stored", "Events applied to the read model (each identity once)")
        stored.add_metric([], float(status.events_stored))
        families.append(stored)
    if status.batch_durations is not None:
        durations = status.batch_durations
        histogram = HistogramMetricFamily("epochstream_drain_batch_duration_seconds",
                                          "Wall time of one drained batch, all workers (decode, write, commit, ack)")
        histogram.add_metric([], [("+Inf" if b == float("inf") else repr(b), float(n)) for b, n in durations.buckets],
                             sum_value=durations.sum)
        families.append(histogram)
    return families


_RUN_PATH = re.compile(r"^/runs/[^/]+(/(?:epochs|best|steps|system))?$")  # the polls answered before routing


def route_template(scope: Scope) -> str:
    """The path template a request was routed to (`/runs/{run_id}`), so the label set stays small; a poll the
    304 fast path answered before routing is named by the template of its path."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return path
    poll = _RUN_PATH.match(scope.get("path", ""))
    if poll:
        return "/runs/{run_id}" + (poll.group(1) or "")
    return UNMATCHED


class RequestTimer:
    """Outermost middleware: times every answer (the 304 fast path's too) per route template."""

    def __init__(self, app: ASGIApp, histogram: Histogram):
        self.app, self.histogram = app, histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = route_template(scope)  # routing wrote the route it chose into this very scope
            self.histogram.labels(route, str(status["code"])).observe(time.perf_counter() - started)


def install(app: FastAPI, settings: Settings, reader: ReadModelReader, protected: list) -> None:
    """Add `/metrics` (behind the token when one is set), `/readyz` and the request timer to `app`."""
    registry = CollectorRegistry(auto_describe=False)
    brokers = Brokers(settings)
    collector = PipelineCollector(settings, reader, brokers)
    registry.register(collector)
    latency = Histogram("epochstream_api_request_duration_seconds", "API answer time per route template and status",
                        ["route", "status"], buckets=LATENCY_BUCKETS_S, registry=registry)
    app.add_middleware(RequestTimer, histogram=latency)

    router = APIRouter(tags=["operations"])

    @router.get("/metrics", summary="Prometheus metrics: streams, pending, ingest lag, dead letters, drains, API",
                response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router, dependencies=protected)

    probe = APIRouter(tags=["health"])

    @probe.get("/readyz", summary="Readiness: the read model opens and the broker answers (503 otherwise)")
    def readyz() -> JSONResponse:
        checks = {"read_model": _read_model_check(reader), "broker": _broker_check(brokers)}
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    app.include_router(probe)


def _read_model_check(reader: ReadModelReader) -> str:
    try:
        if reader.generation() is None:
            return "no read model yet: it appears with the first drained batch (or `epochstream rebuild`)"
        reader.tracking()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - not ready, and why
        return f"{type(exc).__name__}: {exc}"


def _broker_check(brokers: Brokers) -> str:
    try:
        brokers.streams().ping()
        return "ok"
    except Exception as exc:  # noqa: BLE001
        if isinstance(exc, BROKER_ERRORS):
            brokers.forget()
        return f"{type(exc).__name__}: {exc}"

