"""Where log lines go and what they look like: one JSON object per line (python-json-logger),
for a log shipper to parse, or plain text for a terminal.

One configuration serves the application's loggers and gunicorn's error log, in the master and
in every worker (gunicorn applies it as ``logconfig_dict``). The per-request line comes from
``observability.py`` on the ``scim_bridge.access`` logger; its fields are ``extra`` values, so
the JSON line carries them as keys and the text line only shows its message.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ACCESS_LOGGER", "LOG_FORMATS", "logging_config"]

#: The logger of the one line per request.
ACCESS_LOGGER = "scim_bridge.access"
#: ``--log-format`` / ``SCIM_BRIDGE_LOG_FORMAT`` values; the first is the default.
LOG_FORMATS = ("json", "text")

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: ``process`` is the worker's pid: which worker answered, which one died.
_JSON_FIELDS = "%(levelname)s %(name)s %(process)d %(message)s"


def logging_config(log_format: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document: every logger to stderr in ``log_format``."""
    if log_format == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": _JSON_FIELDS,
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",  # ISO 8601, UTC
        }
    else:
        formatter = {"format": _TEXT}
    handler = {"class": "logging.StreamHandler", "formatter": log_format,
               "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {log_format: formatter},
        "handlers": {"stderr": handler},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            # gunicorn's error log keeps its name and writes through the same handler.
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            # gunicorn turns its access log on with any logconfig_dict; ACCESS_LOGGER already
            # logs each request once, with its route template and token name.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }
