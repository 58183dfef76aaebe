"""Every Prometheus metric of the bridge, and their exposition.

Under gunicorn every worker is its own process: ``scim-bridge serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before anything imports prometheus-client, so
each worker writes its values to files there and a scrape sums them all (also those of a worker
that has died; ``server.py`` marks it dead so its live gauges drop out). Without that variable
(tests, ``flask run``) the values live in this process. No Flask here: services, the choke point
and the edge all count through these objects.
"""

from __future__ import annotations

import os
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
from sqlalchemy import event
from sqlalchemy.orm import Session

__all__ = [
    "DATABASE_ERRORS", "INTROSPECTIONS", "REQUESTS", "REQUEST_LOG_PENDING", "REQUEST_SECONDS",
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

# -- the outbox (delivery issue) ------------------------------------------------------------------
# Its gauges and counters go here, beside the others: outbox depth and oldest pending age
# (Gauge, multiprocess_mode="max" when the worker sets them from a query), delivery latency
# (Histogram) and dead letters (Counter), each labelled by receiver kind.


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


def exposition() -> tuple[bytes, str]:
    """The text format of every metric (summed over every worker's files in multiprocess
    mode) and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def multiprocess_registry() -> CollectorRegistry:
    """A registry that reads every worker's files, for the master's ``--metrics-port``."""
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry)
    return registry


def mark_process_dead(pid: int) -> None:
    """A worker exited: drop its live gauges (its counters stay in the sums)."""
    if os.environ.get(MULTIPROC_ENV):
        _multiprocess.mark_process_dead(pid)
