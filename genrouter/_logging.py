"""The log lines genrouter writes on the ``genrouter`` logger (it installs no handler).

Each line is one routing event, with the model and the reason, at a level an operator can
filter by: ``WARNING`` when something stopped working (a circuit opened, the network looks
down, every candidate failed), ``INFO`` for what routing did about it (retry, fallback,
resume, cooldown, a circuit closing again). Every record carries ``genrouter_event`` (the
event's name) and ``genrouter_model`` in its ``extra`` so handlers can route on them. Reasons
pass through :func:`~genrouter.errors.redact`: a key never reaches a log line.
"""

from __future__ import annotations

import logging

from genrouter.errors import redact

__all__ = [
    "LOGGER_NAME",
    "log_circuit",
    "log_cooldown",
    "log_fallback",
    "log_offline",
    "log_resume",
    "log_retry",
]

LOGGER_NAME = "genrouter"


def _emit(level: int, event: str, model: str, message: str, *args: object) -> None:
    log = logging.getLogger(LOGGER_NAME)
    if log.isEnabledFor(level):
        text = redact(message % args if args else message)
        log.log(level, "%s", text, extra={"genrouter_event": event, "genrouter_model": model})


def reason_of(error: BaseException | None) -> str:
    """A short reason for *error*: its class, status code and first line of text."""
    if error is None:
        return "no error"
    status = getattr(error, "status_code", None)
    text = str(error).splitlines()[0] if str(error) else ""
    head = type(error).__name__ + (f" {status}" if status else "")
    return f"{head}: {text[:200]}" if text else head


def log_retry(model: str, delay_s: float, reason: str) -> None:
    _emit(logging.INFO, "retry", model, "retrying %s in %.3fs after %s", model, delay_s, reason)


def log_fallback(failed: str, next_model: str, reason: str) -> None:
    _emit(
        logging.INFO,
        "fallback",
        failed,
        "falling back from %s to %s after %s",
        failed,
        next_model,
        reason,
    )


def log_resume(failed: str, reason: str) -> None:
    _emit(
        logging.INFO,
        "resume",
        failed,
        "resuming the stream on the next candidate after %s broke mid-stream: %s",
        failed,
        reason,
    )


def log_circuit(model: str, state: str, reason: str) -> None:
    level = logging.WARNING if state == "open" else logging.INFO
    _emit(level, f"circuit_{state}", model, "circuit for %s is %s: %s", model, state, reason)


def log_cooldown(model: str, seconds: float) -> None:
    _emit(
        logging.INFO,
        "cooldown",
        model,
        "cooling %s down for %gs (the server's Retry-After); other candidates go first",
        model,
        seconds,
    )


def log_offline(subject: str, down: bool, reason: str) -> None:
    """*subject*: a host, or ``"network"``; *down*: marked down (``True``) or back."""
    if down:
        _emit(logging.WARNING, "offline", subject, "offline: %s marked down: %s", subject, reason)
    else:
        _emit(logging.INFO, "online", subject, "online again: %s answered: %s", subject, reason)
