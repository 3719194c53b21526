"""llama.cpp's own log lines, routed into Python :mod:`logging`.

llama.cpp writes its log (model metadata, ``llama_kv_cache_iswa: using full-size SWA cache …``)
through one process-wide C callback. llama-cpp-python installs a callback that prints to
stderr, and it still maps levels with the ggml enum of older releases: since ggml renumbered
its levels (``NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5`` in ``ggml/include/ggml.h``
of the llama.cpp vendored by llama-cpp-python 0.3.36) every warning counts as an error there
and is printed even with ``verbose=False`` (hence the SWA line in the middle of a progress line).

:func:`route_llama_log` replaces that callback with one that emits each complete line as a
record of the ``genrouter.local.llama_cpp`` logger, at the level llama.cpp gave it. Nothing
is printed unless logging is configured to show it; the ``genrouter`` command shows these
lines with ``-v`` (warnings) and ``-vv`` (everything).

The C callback is process-wide by nature (llama.cpp keeps one), so the installed bridge is
kept for the life of the process: ctypes must keep the callback object alive while C holds
its pointer. Installing is idempotent.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

__all__ = ["NATIVE_LOGGER", "LlamaLogBridge", "route_llama_log"]

#: The logger that receives llama.cpp's native log lines.
NATIVE_LOGGER = "genrouter.local.llama_cpp"

# ggml_log_level (ggml.h): NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5 (continues the
# previous line). NONE is ggml's "always print" output; it carries no severity of its own.
_LEVELS = {
    0: logging.INFO,
    1: logging.DEBUG,
    2: logging.INFO,
    3: logging.WARNING,
    4: logging.ERROR,
}
_CONT = 5


class LlamaLogBridge:
    """Turns llama.cpp's log fragments into whole-line :mod:`logging` records.

    llama.cpp sends most messages as one line ending in ``\\n``, but progress output comes as
    pieces (``.`` after ``.``) with the ``CONT`` level: pieces are joined until a newline and
    the line gets the level of its first piece.
    """

    __slots__ = ("_level", "_lock", "_logger", "_pending")

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._lock = threading.Lock()
        self._pending = ""
        self._level = logging.INFO

    def __call__(self, level: int, text: bytes | None) -> None:
        """Take one fragment (called from whatever thread llama.cpp logs on)."""
        if not text:
            return
        piece = text.decode("utf-8", "replace")
        with self._lock:
            if level != _CONT:
                if self._pending:  # a new message ends an unterminated one
                    self._emit(self._pending)
                    self._pending = ""
                self._level = _LEVELS.get(level, logging.INFO)
            self._pending += piece
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self._emit(line)

    def _emit(self, line: str) -> None:
        line = line.rstrip()
        if line and self._logger.isEnabledFor(self._level):
            self._logger.log(self._level, "%s", line)


@functools.cache
def route_llama_log() -> Any:
    """Send llama.cpp's native log to the ``genrouter.local.llama_cpp`` logger (once per process).

    Imports ``llama_cpp`` (raises :class:`ImportError` without it); call it just before a
    local model loads. Returns the installed ctypes callback, which this cache keeps alive.
    """
    import ctypes

    import llama_cpp

    bridge = LlamaLogBridge(logging.getLogger(NATIVE_LOGGER))

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes | None, user_data: Any) -> None:
        try:
            bridge(level, text)
        except Exception:  # an exception must never cross back into C
            return

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    return callback
