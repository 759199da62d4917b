"""How the worker's log lines look: Faust's text for people, or one JSON object per line for
a log shipper (``STREAMER_LOG_FORMAT=json``), formatted by python-json-logger.

In JSON a line is ``{"time": ..., "level": ..., "logger": ..., "message": ...}``, plus
``exc_info`` (the traceback, as one string) when there is one: a multi-line traceback never
splits a record across lines. Faust redirects what is printed to stdout into the log, so that
is JSON too.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

__all__ = ["LEVELS", "early_json_logging", "mode_logging_config"]

#: ``--loglevel`` choices (Faust's names) and their numbers. Given as numbers: Faust's own
#: lookup takes "crit" for an unknown level name.
LEVELS = {
    "crit": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


def _json_formatter() -> dict[str, Any]:
    return {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(levelname)s %(name)s %(message)s",
        "rename_fields": {"levelname": "level", "name": "logger"},
        "timestamp": "time",  # ISO 8601, UTC
    }


def _json_handler() -> dict[str, Any]:
    return {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}


def mode_logging_config(log_format: str) -> dict[str, Any] | None:
    """The ``logging_config`` for Faust's worker (mode merges it into its own, keeping the
    level and the root logger it sets up), or None to keep Faust's text."""
    if log_format != "json":
        return None
    return {
        "merge": True,
        "formatters": {"json": _json_formatter()},
        "handlers": {"default": _json_handler()},  # replaces Faust's coloured text handler
    }


def early_json_logging(level: int) -> None:
    """JSON logging for what a command says before Faust sets logging up (its start-up line)."""
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": _json_formatter()},
        "handlers": {"default": _json_handler()},
        "root": {"level": level, "handlers": ["default"]},
    })  # fmt: skip
