"""Experiment sizing: how much work one experiment may do when the run has more time than experiments left.

A task's `max_experiments` caps launches; on small data the offline expert's
experiments take seconds, so the cap, not the wall time, ends the run and
half the budget goes unused. Sizing spreads the time that is left over the
experiments that are left: an experiment whose share is many times its
parent's cost tunes longer or bags more seeds. Steps are powers of two, so
that small differences in measured times rarely change the code a run writes.
"""

from __future__ import annotations

__all__ = ["MAX_SCALE", "scale", "share"]

MAX_SCALE = 8
"""The most an experiment's work is multiplied by: past it, more trials and seeds buy little."""


def share(seconds_left: float, experiments_left: int, workers: int) -> float:
    """Wall seconds each remaining experiment may take, so that the time and the experiment cap run out together."""
    return max(0.0, seconds_left) * max(1, workers) / max(1, experiments_left)


def scale(share_seconds: float | None, unit_seconds: float | None, *, headroom: float = 0.7) -> int:
    """How many times `unit_seconds` of work fit in `headroom` of the share: 1, 2, 4 or 8 (1 when either is unknown)."""
    if not share_seconds or not unit_seconds or unit_seconds <= 0:
        return 1
    fits = headroom * share_seconds / unit_seconds
    factor = 1
    while factor * 2 <= min(fits, MAX_SCALE):
        factor *= 2
    return factor
