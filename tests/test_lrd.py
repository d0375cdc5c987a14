"""The LRD score on hand-made predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnbench.training.lrd import lrd_score

DISTANCES = np.arange(1, 257).repeat(8)  # buckets 1, 2-3, 4-7, ..., 128-255, 256


def test_perfect_model_scores_one():
    result = lrd_score(DISTANCES, np.ones_like(DISTANCES), chance=0.25, min_count=1)
    assert result.score == 1.0
    assert result.horizon == 256
    assert [b.low for b in result.buckets] == [0, 2, 4, 8, 16, 32, 64, 128, 256]
    assert all(b.skill == 1.0 for b in result.buckets)


def test_chance_model_scores_about_zero():
    rng = np.random.default_rng(0)
    scores = rng.random(DISTANCES.size) < 0.25  # right a quarter of the time, at every distance
    result = lrd_score(DISTANCES, scores, chance=0.25, min_count=1)
    assert result.score < 0.08
    assert result.horizon == 0


def test_worse_than_chance_is_clipped_to_zero():
    result = lrd_score(DISTANCES, np.zeros_like(DISTANCES), chance=0.5, min_count=1)
    assert result.score == 0.0 and all(b.skill == 0.0 for b in result.buckets)


@pytest.mark.parametrize(("fails_beyond", "horizon"), [(64, 63), (50, 31), (4, 3), (300, 256)])
def test_model_that_fails_beyond_a_distance_gets_the_matching_horizon(fails_beyond, horizon):
    rng = np.random.default_rng(1)
    guesses = rng.random(DISTANCES.size) < 0.5
    scores = np.where(DISTANCES < fails_beyond, 1.0, guesses)
    result = lrd_score(DISTANCES, scores, chance=0.5, min_count=1)
    assert result.horizon == horizon
    passing = [b for b in result.buckets if b.skill >= 0.9]
    assert all(b.max_distance < fails_beyond for b in passing)


def test_score_is_the_mean_of_bucket_skills():
    distances = np.array([1, 1, 2, 3, 4, 5, 6, 7])
    scores = np.array([1, 1, 1, 0, 0.5, 0.5, 0.5, 0.5])  # fractional scores (symbols recalled)
    result = lrd_score(distances, scores, chance=0.5, min_count=1)
    assert [b.accuracy for b in result.buckets] == [1.0, 0.5, 0.5]
    assert [b.skill for b in result.buckets] == [1.0, 0.0, 0.0]
    assert result.score == pytest.approx(1 / 3)
    assert result.horizon == 1


def test_per_example_chance_is_averaged_within_a_bucket():
    result = lrd_score(np.array([8, 9]), np.array([1.0, 0.0]), chance=np.array([0.2, 0.0]))
    assert result.buckets[0].chance == pytest.approx(0.1)
    assert result.buckets[0].skill == pytest.approx((0.5 - 0.1) / 0.9)


@pytest.mark.parametrize(
    ("distances", "scores", "chance", "message"),
    [
        ([], [], 0.5, "at least one example"),
        ([1, 2], [1.0], 0.5, "1 scores for 2 distances"),
        ([-1], [1.0], 0.5, "non-negative"),
        ([1], [1.0], 1.0, "chance must be in"),
    ],
)
def test_bad_input(distances, scores, chance, message):
    with pytest.raises(ValueError, match=message):
        lrd_score(np.array(distances), np.array(scores), chance)


def test_the_horizon_stops_at_the_first_failing_bucket():
    """A bucket that passes again after a failing one does not extend the horizon."""
    scores = np.where((DISTANCES >= 16) & (DISTANCES < 32), 0.0, 1.0)
    result = lrd_score(DISTANCES, scores, chance=0.5, min_count=1)
    assert result.horizon == 15
    assert any(b.skill == 1.0 and b.low >= 32 for b in result.buckets), "later buckets pass again"


def test_small_buckets_merge_so_none_rests_on_a_handful_of_examples():
    result = lrd_score(DISTANCES, np.ones_like(DISTANCES), chance=0.25)  # default minimum count 30
    assert all(b.count >= 30 for b in result.buckets)
    assert sum(b.count for b in result.buckets) == DISTANCES.size
    assert result.buckets[0].low == 0 and result.buckets[0].high == 8, "distances 1-7 (56 examples) in one"
    lows = [b.low for b in result.buckets]
    assert lows == sorted(lows) and len(result.buckets) == 6
    tail = lrd_score(np.array([*([40] * 50), 70]), np.ones(51), chance=0.5)
    assert len(tail.buckets) == 1 and tail.buckets[0].count == 51, "a small last bucket joins the one before"


def test_each_bucket_has_its_count_and_a_binomial_interval():
    rng = np.random.default_rng(3)
    scores = (rng.random(DISTANCES.size) < 0.8).astype(float)
    for bucket in lrd_score(DISTANCES, scores, chance=0.5).buckets:
        assert bucket.accuracy_low <= bucket.accuracy <= bucket.accuracy_high
        assert 0 <= bucket.skill_low <= bucket.skill <= bucket.skill_high <= 1
        # 95 % Wilson half-width is close to 1.96 sqrt(p(1-p)/n) at these counts
        half = 1.96 * np.sqrt(bucket.accuracy * (1 - bucket.accuracy) / bucket.count)
        assert bucket.accuracy_high - bucket.accuracy_low == pytest.approx(2 * half, rel=0.25)


def test_one_distance_bucket_has_no_lrd_measure():
    """Fixed-length data (every label depends on the whole sequence) must not pass accuracy off as memory."""
    result = lrd_score(np.full(500, 39), np.ones(500), chance=0.1)
    assert result.score is None and result.horizon is None and not result.measured
    assert len(result.buckets) == 1 and result.buckets[0].accuracy == 1.0


def test_skill_band_clamps_to_the_plot_scale_and_draws_no_bar_where_none_was_measured():
    from rnnbench.training.lrd import SkillBand

    band = SkillBand.of(0.9, 0.7, 1.3)
    assert (band.low, band.high) == (0.7, 1.0) and band.below == pytest.approx(0.2)
    assert band.above == pytest.approx(0.1)
    assert SkillBand.of(-0.1, -0.4, 0.2).low == 0.0 and SkillBand.of(-0.1, -0.4, 0.2).below == 0.0
    for missing in (None, math.nan):
        none = SkillBand.of(0.5, missing, missing)
        assert math.isnan(none.low) and math.isnan(none.high) and (none.below, none.above) == (0.0, 0.0)
