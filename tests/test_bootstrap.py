"""Clip-level bootstrap intervals: known answers."""

import numpy as np
import pytest

from pipeline.evaluation.bootstrap import bootstrap_mean, cell_rng, paired_difference


def test_a_constant_has_a_zero_width_interval():
    cell = bootstrap_mean([0.7] * 25, resamples=500)
    assert cell.mean == pytest.approx(0.7) and cell.low == cell.mean == cell.high and cell.n == 25
    assert cell.half_width == 0.0 and cell.excludes_zero()  # 0.7 > 0: an exact difference is significant


def test_interval_of_a_known_sample_matches_the_normal_closed_form():
    # the bootstrap distribution of a mean of n iid draws is ~ normal with sd = s / sqrt(n) (s: ddof=0)
    values = np.random.default_rng(0).normal(3.0, 2.0, size=400)
    cell = bootstrap_mean(values, resamples=4000, confidence=0.95, rng=np.random.default_rng(1))
    half = 1.959964 * values.std() / np.sqrt(len(values))
    assert cell.mean == pytest.approx(values.mean())
    assert cell.low == pytest.approx(values.mean() - half, abs=0.15 * half)
    assert cell.high == pytest.approx(values.mean() + half, abs=0.15 * half)
    narrower = bootstrap_mean(values, resamples=4000, confidence=0.5, rng=np.random.default_rng(1))
    assert narrower.half_width < cell.half_width


def test_pooled_mean_with_weights_and_nan_clips_left_out():
    # per-clip sums over 1, 3 and 4 notes: the pooled mean is 8 / 8 = 1, not the mean of per-clip means
    cell = bootstrap_mean([2.0, 3.0, 3.0, float("nan")], weights=[1, 3, 4, 2], resamples=200)
    assert cell.mean == pytest.approx(1.0) and cell.n == 3
    assert bootstrap_mean([], resamples=10).n == 0 and np.isnan(bootstrap_mean([]).mean)


def test_same_seed_same_interval_and_cells_are_independent_of_order():
    values = np.random.default_rng(3).random(50)
    a = bootstrap_mean(values, rng=cell_rng(0, "Deep Performer", "note_f1"))
    b = bootstrap_mean(values, rng=cell_rng(0, "Deep Performer", "note_f1"))
    c = bootstrap_mean(values, rng=cell_rng(0, "Deep Performer", "mel_mse"))
    assert a == b and (a.low, a.high) != (c.low, c.high)


def test_paired_difference_sees_a_small_consistent_gap_that_unpaired_intervals_miss():
    rng = np.random.default_rng(5)
    base = rng.normal(0.5, 0.2, size=60)  # clips differ a lot from each other ...
    a = {f"clip{i}": v + 0.03 for i, v in enumerate(base)}  # ... but system a is always 0.03 better
    b = {f"clip{i}": v for i, v in enumerate(base)}
    b["only_b"] = 10.0  # a clip one system lacks does not count
    diff = paired_difference(a, b, rng=np.random.default_rng(0))
    assert diff.mean == pytest.approx(0.03) and diff.excludes_zero() and diff.n == 60
    unpaired_a = bootstrap_mean(list(a.values()), rng=np.random.default_rng(0))
    unpaired_b = bootstrap_mean(base, rng=np.random.default_rng(0))
    assert unpaired_a.low < unpaired_b.high  # the two intervals overlap
    noise = paired_difference(
        {k: v + rng.normal(0, 0.2) for k, v in b.items() if k != "only_b"}, b, rng=np.random.default_rng(0)
    )
    assert not noise.excludes_zero()
