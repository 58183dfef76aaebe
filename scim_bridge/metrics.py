"""Every Prometheus metric of the bridge, and their exposition.

Under gunicorn every worker is its own process: ``scim-bridge serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before anything imports prometheus-client, so
each worker writes its values to files there and a scrape sums them all (also those of a worker
that has died; ``server.py`` marks it dead so its live gauges drop out). Without that variable
(tests, ``flask run``) the values live in this process. No Flask here: services, the choke point
and the edge all count through these objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client import values as _values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.orm import Session

__all__ = [
    "DATABASE_ERRORS", "DELIVERY_ATTEMPTS", "DELIVERY_LATENCY", "OutboxGauges",
    "OutboxState", "INTROSPECTIONS", "REQUESTS", "REQUEST_LOG_PENDING", "REQUEST_SECONDS",
    "REVOCATIONS", "SESSIONS_CREATED", "MULTIPROC_ENV", "count_after_commit", "enable_multiprocess",
    "exposition", "mark_process_dead", "multiprocess_registry",
]

#: The variable prometheus-client reads (once, at import) to write values to files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# -- the request path (observability.py) ---------------------------------------------------------

REQUESTS = Counter(
    "scim_bridge_http_requests", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "scim_bridge_http_request_duration_seconds",
    "Time from the first request hook to the response, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# -- access control -------------------------------------------------------------------------------

REVOCATIONS = Counter(
    "scim_bridge_revocations",
    "Sessions revoked by committed changes, by cause (member_removed, user_deactivated, ...).",
    ["cause"],
)
INTROSPECTIONS = Counter(
    "scim_bridge_introspections", "Session introspections (RFC 7662), by result.", ["result"],
)
SESSIONS_CREATED = Counter("scim_bridge_sessions_created", "Application sessions created.")

# -- the database and the SCIM request log --------------------------------------------------------

DATABASE_ERRORS = Counter(
    "scim_bridge_database_errors",
    "Database trouble on the request path, by kind: unavailable (503), conflict-retried (a "
    "PostgreSQL serialization conflict retried once), conflict-503 (the retry failed too).",
    ["kind"],
)
REQUEST_LOG_PENDING = Gauge(
    "scim_bridge_request_log_pending",
    "SCIM request-log entries held in memory, not yet written (summed over live workers).",
    multiprocess_mode="livesum",
)

# -- the outbox ------------------------------------------------------------------------------------
# Counted by the worker, in whichever process it runs: each attempt by receiver kind and what
# the sender made of it, and the time from a delivery's creation (or replay) to its success.
# Depth, oldest pending age and dead letters are the database's state, read at each scrape
# (OutboxGauges below), so every process and every instance reports the same truth.

DELIVERY_ATTEMPTS = Counter(
    "scim_bridge_delivery_attempts",
    "Delivery attempts, by receiver kind and outcome (delivered, retry, dead).",
    ["kind", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "scim_bridge_delivery_latency_seconds",
    "Time from a delivery's creation (or replay) to the receiver's success, by receiver kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0, 86400.0),
)

#: One receiver kind's outbox as the database has it: (kind, open rows, seconds the oldest
#: open row has been due, dead rows).
OutboxState = tuple[str, int, float, int]


class OutboxGauges(Collector):
    """The outbox gauges, read from the database when scraped (``read`` runs the query)."""

    def __init__(self, read: Callable[[], list[OutboxState]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "scim_bridge_outbox_depth",
            "Deliveries not yet delivered nor dead (pending or retrying), by receiver kind.",
            labels=["kind"])
        oldest = GaugeMetricFamily(
            "scim_bridge_outbox_oldest_pending_age_seconds",
            "How long the longest-waiting open delivery has been due, by receiver kind.",
            labels=["kind"])
        dead = GaugeMetricFamily(
            "scim_bridge_outbox_dead_letters",
            "Dead-lettered deliveries waiting for a replay, by receiver kind.", labels=["kind"])
        try:
            state = self._read()
        except Exception:  # the database is away: the other metrics still answer
            logging.getLogger(__name__).warning("reading the outbox for metrics failed",
                                                exc_info=True)
            return
        for kind, open_rows, age, dead_rows in state:
            depth.add_metric([kind], open_rows)
            oldest.add_metric([kind], age)
            dead.add_metric([kind], dead_rows)
        yield from (depth, oldest, dead)


def count_after_commit(db: Session, counter: Any, amount: float = 1) -> None:
    """Increment ``counter`` (a metric, labels applied) when ``db`` commits, never when it
    rolls back: a change retried after a conflict is counted once."""
    if amount:
        db.info.setdefault(_PENDING_COUNTS, []).append((counter, amount))


_PENDING_COUNTS = "scim_bridge.metrics.pending"


@event.listens_for(Session, "after_commit")
def _counted(db: Session) -> None:
    for counter, amount in db.info.pop(_PENDING_COUNTS, ()):
        counter.inc(amount)


@event.listens_for(Session, "after_transaction_end")
def _dropped(db: Session, transaction: Any) -> None:
    """A transaction that ended without a commit (rolled back, closed) counted nothing."""
    if transaction.parent is None:
        db.info.pop(_PENDING_COUNTS, None)


def enable_multiprocess(directory: str) -> None:
    """Write every value to files in ``directory`` from now on (``serve``, before gunicorn
    forks). prometheus-client chooses its storage from ``PROMETHEUS_MULTIPROC_DIR`` when first
    imported, which importing the package already did: choose again, and give the metrics
    without labels (whose one value exists already) storage of the new kind. Labelled values
    are made on first use, in the workers."""
    os.environ[MULTIPROC_ENV] = directory
    _values.ValueClass = _values.get_value_class()
    for metric in (SESSIONS_CREATED, REQUEST_LOG_PENDING):
        metric._metric_init()


def exposition(*extra: Collector) -> tuple[bytes, str]:
    """The text format of every metric (summed over every worker's files in multiprocess
    mode), then of the ``extra`` collectors (read at scrape), and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    if extra:
        scraped = CollectorRegistry(auto_describe=False)
        for collector in extra:
            scraped.register(collector)
        body += generate_latest(scraped)
    return body, CONTENT_TYPE_LATEST


def multiprocess_registry() -> CollectorRegistry:
    """A registry that reads every worker's files, for the master's ``--metrics-port``."""
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry)
    return registry


def mark_process_dead(pid: int) -> None:
    """A worker exited: drop its live gauges (its counters stay in the sums)."""
    if os.environ.get(MULTIPROC_ENV):
        _multiprocess.mark_process_dead(pid)
