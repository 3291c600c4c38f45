"""The small-window statistics behind the noise-aware flags."""

from __future__ import annotations

import math
import random

from schemas.trend_stats import curvature_noise, difference_noise, fit, median


def test_a_line_has_no_noise_and_its_slope_is_exact():
    line = fit(list(range(10)), [3.0 - 0.5 * e for e in range(10)])
    assert math.isclose(line.slope, -0.5) and math.isclose(line.change, -4.5) and math.isclose(line.level, -1.5)
    assert line.noise == 0.0 and line.change_noise == 0.0
    assert fit([0, 1], [1.0, 2.0]) is None and fit([5, 5, 5], [1.0, 2.0, 3.0]) is None


def test_all_zeros_huge_and_tiny_values_neither_divide_by_zero_nor_overflow():
    assert fit(list(range(6)), [0.0] * 6).slope == 0.0
    huge = fit(list(range(6)), [1e300 * (1 + e) for e in range(6)])
    assert math.isclose(huge.slope, 1e300) and math.isfinite(huge.noise)
    tiny = fit(list(range(6)), [1e-300 * (1 + e) for e in range(6)])
    assert math.isclose(tiny.slope, 1e-300)
    assert fit(list(range(4)), [1.0, math.inf, 2.0, 3.0]) is None


def test_the_noise_ignores_trends_bends_and_a_spike_but_not_noise():
    r = random.Random(3)
    noisy = [r.gauss(0, 0.1) for _ in range(200)]
    assert 0.07 < difference_noise(noisy, 10) < 0.15 and 0.07 < curvature_noise(noisy) < 0.15
    assert difference_noise([0.1 * e for e in range(20)], 10) < 1e-15  # a straight line (float dust aside)
    v_shape = [abs(e - 10) * 0.05 for e in range(20)]
    assert curvature_noise(v_shape) < 1e-15  # the turn of an overfitting curve is not noise
    spiked = [1.0] * 20
    spiked[12] = 5.0
    assert difference_noise(spiked, 10) == 0.0 and curvature_noise(spiked) == 0.0
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([4.0, 1.0, 2.0, 3.0]) == 2.5
