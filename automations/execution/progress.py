"""The runner's progress line for a backlog: ``leads-to-loops: 420 of 5,000 sent, about 7 min
left``.

Every ``backlog_log_every_s`` (10 s) the runner counts each recipe's waiting runs (``pending`` or
``running``, one read of the ``runs_backlog`` index) and hands the counts to ``BacklogProgress``,
which writes one line per recipe that has runs waiting, and none when nothing waits:

- **of**: the backlog when it started (the first count that found runs waiting), plus the runs
  added since: a count that grew between two ticks adds the growth;
- **sent**: of those, the runs no longer waiting (ended, whatever their outcome);
- **left**: the runs still waiting at the pace of the last minute (from the first count, while
  the backlog is younger than that); ``no estimate yet`` before a second count,
  ``nothing sent in the last minute`` when the pace is nil over a whole minute, and, when the
  caller says why the recipe cannot go on (a paused connection, a recipe not loaded), that.

A recipe whose count reaches zero has finished its backlog: the next one starts afresh.
Time is a parameter (``now``, monotonic seconds), so tests drive it without sleeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["BacklogProgress", "left_text", "progress_line"]

#: The stretch of counts the pace is taken over.
WINDOW_S = 60.0


@dataclass(slots=True)
class _Drain:
    """One recipe's backlog since it started."""

    total: int
    queued: int
    #: ``(time, sent)`` of the counts of the last ``WINDOW_S``, and the one just before them.
    counts: deque[tuple[float, int]] = field(default_factory=deque)


class BacklogProgress:
    """Remembers each recipe's backlog between counts; ``update`` gives the lines to log."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._drains: dict[str, _Drain] = {}

    def update(
        self,
        now: float,
        queued: Mapping[str, int],
        held_by: Mapping[str, str] | None = None,
    ) -> list[str]:
        """The lines for the counts ``queued`` (runs waiting per recipe) taken at ``now``;
        ``held_by`` says why a recipe's runs cannot go on, for the recipes that cannot."""
        lines = []
        for recipe in sorted(queued):
            waiting = queued[recipe]
            if waiting <= 0:
                continue
            drain = self._drains.get(recipe)
            if drain is None:
                drain = self._drains[recipe] = _Drain(waiting, waiting)
            elif waiting > drain.queued:
                drain.total += waiting - drain.queued  # runs added since the last count
            drain.queued = waiting
            sent = drain.total - waiting
            counts = drain.counts
            counts.append((now, sent))
            while len(counts) > 2 and counts[1][0] <= now - self.window_s:
                counts.popleft()  # the oldest kept is the last one at or before the window
            why = (held_by or {}).get(recipe)
            lines.append(progress_line(recipe, sent, drain.total, why or self._left(drain, now)))
        for recipe in [r for r in self._drains if queued.get(r, 0) <= 0]:
            del self._drains[recipe]  # done: a later backlog starts afresh
        return lines

    def _left(self, drain: _Drain, now: float) -> str:
        (since, sent_then), (_, sent_now) = drain.counts[0], drain.counts[-1]
        seconds = now - since
        if seconds <= 0:
            return "no estimate yet"
        if sent_now <= sent_then:
            if seconds < self.window_s:
                return "no estimate yet"
            return "nothing sent in the last minute"
        pace = (sent_now - sent_then) / seconds
        return left_text(drain.queued / pace)


def progress_line(recipe: str, sent: int, total: int, left: str) -> str:
    """``leads-to-loops: 420 of 5,000 sent, about 7 min left``."""
    return f"{recipe}: {sent:,} of {total:,} sent, {left}"


def left_text(seconds: float) -> str:
    """``less than a minute left``, ``about 7 min left``, ``about 2 h 05 min left``."""
    if seconds < 60:
        return "less than a minute left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"
