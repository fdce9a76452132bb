"""Experiment sizing: the run's time left is spread over the experiments left, in powers of two."""

from __future__ import annotations

import pytest

from crew.tools.sizing import MAX_SCALE, scale, share


def test_share_spreads_the_time_left_over_the_experiments_left():
    assert share(300.0, 50, 2) == pytest.approx(12.0)
    assert share(100.0, 10, 1) == pytest.approx(10.0)
    assert share(-5.0, 10, 1) == 0.0
    assert share(100.0, 0, 1) == pytest.approx(100.0)  # the last experiment may have it all


@pytest.mark.parametrize(("share_seconds", "unit", "expected"), [
    (10.0, 10.0, 1),      # the unit barely fits: no more work
    (30.0, 10.0, 2),      # 2.1 units fit within the headroom
    (60.0, 10.0, 4),
    (1000.0, 10.0, MAX_SCALE),
    (None, 10.0, 1), (50.0, None, 1), (50.0, 0.0, 1),
])
def test_scale_is_the_largest_power_of_two_that_fits(share_seconds, unit, expected):
    assert scale(share_seconds, unit) == expected


def test_scale_moves_in_coarse_steps():
    """Times that differ by a few percent give the same size almost everywhere, so repeated runs write the
    same code."""
    sizes = {scale(100.0, unit) for unit in (8.0, 8.2, 8.4)}
    assert sizes == {8}
