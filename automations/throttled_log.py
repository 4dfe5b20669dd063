"""Log lines that anyone outside can cause, kept to a bounded rate.

Every rejected webhook (bad signature, unknown path, oversized head) is worth a line for the
operator, but a scanner or a misconfigured provider can send thousands a second, and a log that
grows at that pace is itself an outage (disk, log shipping, the operator's attention). A
``ThrottledLog`` writes at most ``per_window`` lines per kind in each ``window_s``; the lines it
drops are counted, and the count is written with the next line of that kind after the window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ThrottledLog"]


@dataclass(slots=True)
class _Window:
    started: float
    written: int = 0
    dropped: int = 0


class ThrottledLog:
    """At most ``per_window`` warnings of each kind per ``window_s`` seconds on ``logger``.
    Kinds are a small fixed set named by the caller ("webhook rejections"), so state stays
    bounded whatever is sent."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        per_window: int = 20,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.per_window = per_window
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def warning(self, kind: str, msg: str, *args: object) -> None:
        now = self._clock()
        window = self._windows.get(kind)
        if window is None or now - window.started >= self.window_s:
            if window is not None and window.dropped:
                self.logger.warning(
                    "%d more %s were not logged (at most %d every %g s)",
                    window.dropped,
                    kind,
                    self.per_window,
                    self.window_s,
                )
            window = self._windows[kind] = _Window(now)
        if window.written < self.per_window:
            window.written += 1
            self.logger.warning(msg, *args)
        else:
            window.dropped += 1
