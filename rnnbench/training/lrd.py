"""The long-range-dependency (LRD) score: skill above chance per log2 distance bucket.

Test examples are grouped by ``distance`` into buckets [2^k, 2^(k+1)) (distance 0 joins the first);
a bucket with fewer than ``min_count`` examples is merged with its longer neighbour (the longest
with its shorter one), so that no bucket rests on a handful of examples. In each bucket the
normalised skill is ``s_b = clip((acc_b - chance_b) / (1 - chance_b), 0, 1)``, with the bucket's count
and a 95 % Wilson interval of its accuracy (and so of its skill). ``lrd_score`` is the mean of ``s_b``
over the buckets (in [0, 1]); ``lrd_horizon`` is the largest distance in the contiguous run of
buckets, from the shortest, whose skill is at least 0.9 (0 when the shortest bucket fails).

A test set whose distances fall in one bucket (fixed-length data: every label depends on the whole
sequence) has no LRD measure: ``score`` and ``horizon`` are None ("n/a"), never rescaled accuracy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

HORIZON_SKILL = 0.9
MIN_BUCKET = 30  # examples; smaller buckets merge with a neighbour
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Bucket:
    low: int  # distances in [low, high)
    high: int
    max_distance: int  # the largest distance seen in the bucket
    count: int
    accuracy: float
    chance: float
    skill: float
    accuracy_low: float = math.nan  # 95 % Wilson interval of the accuracy
    accuracy_high: float = math.nan
    skill_low: float = math.nan  # the same interval, as skill
    skill_high: float = math.nan


@dataclass(frozen=True)
class LRDResult:
    score: float | None  # None: one bucket, no LRD measure
    horizon: int | None
    buckets: tuple[Bucket, ...]

    @property
    def measured(self) -> bool:
        return self.score is not None

    def rows(self) -> list[dict[str, float | int]]:
        return [asdict(b) for b in self.buckets]


@dataclass(frozen=True)
class SkillBand:
    """A skill's 95 % interval on the plots' [0, 1] scale: its ends (NaN where none was measured, as in
    the rows of older runs) and the error bars drawn from the skill (0 where none)."""

    low: float
    high: float
    below: float
    above: float

    @classmethod
    def of(cls, skill: float, low: float | None, high: float | None) -> SkillBand:
        low = math.nan if low is None or math.isnan(low) else min(max(low, 0.0), 1.0)
        high = math.nan if high is None or math.isnan(high) else min(max(high, 0.0), 1.0)
        below = 0.0 if math.isnan(low) else max(skill - low, 0.0)
        above = 0.0 if math.isnan(high) else max(high - skill, 0.0)
        return cls(low, high, below, above)


def wilson(successes: float, count: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (``successes`` may be fractional: shares of steps)."""
    if count < 1:
        return (0.0, 1.0)
    p = successes / count
    centre = (p + Z95**2 / (2 * count)) / (1 + Z95**2 / count)
    half = Z95 * math.sqrt(p * (1 - p) / count + Z95**2 / (4 * count**2)) / (1 + Z95**2 / count)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _skill(accuracy: float, chance: float) -> float:
    return float(np.clip((accuracy - chance) / (1.0 - chance), 0.0, 1.0))


def _groups(index: np.ndarray, min_count: int) -> list[list[int]]:
    """The log2 bucket indices present, grouped so that every group has at least ``min_count``
    examples (a small bucket joins the next longer one; a small last group joins the one before)."""
    keys, counts = np.unique(index, return_counts=True)
    groups: list[list[int]] = []
    size, current = 0, []
    for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
        current.append(key)
        size += count
        if size >= min_count:
            groups.append(current)
            size, current = 0, []
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return groups


def lrd_score(
    distances: np.ndarray,
    scores: np.ndarray,
    chance: float | np.ndarray,
    threshold: float = HORIZON_SKILL,
    min_count: int = MIN_BUCKET,
) -> LRDResult:
    """LRD score of per-example scores (1 correct, 0 wrong, or a fraction such as symbols recalled).

    ``chance`` is the task's chance accuracy, or one per example (averaged within a bucket).
    """
    distances = np.asarray(distances, dtype=np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    chances = np.broadcast_to(np.asarray(chance, dtype=np.float64), distances.shape)
    if distances.size == 0:
        raise ValueError("the LRD score needs at least one example")
    if scores.shape != distances.shape:
        raise ValueError(f"{scores.size} scores for {distances.size} distances")
    if (distances < 0).any():
        raise ValueError("distances must be non-negative")
    if not ((chances >= 0) & (chances < 1)).all():
        raise ValueError("chance must be in [0, 1)")
    index = np.floor(np.log2(np.maximum(distances, 1))).astype(np.int64)
    buckets = []
    for group in _groups(index, min_count):
        members = np.isin(index, group)
        count = int(members.sum())
        accuracy = float(scores[members].mean())
        bucket_chance = float(chances[members].mean())
        low, high = wilson(float(scores[members].sum()), count)
        buckets.append(
            Bucket(
                low=int(2 ** group[0]) if group[0] > 0 else 0,
                high=int(2 ** (group[-1] + 1)),
                max_distance=int(distances[members].max()),
                count=count,
                accuracy=accuracy,
                chance=bucket_chance,
                skill=_skill(accuracy, bucket_chance),
                accuracy_low=low,
                accuracy_high=high,
                skill_low=_skill(low, bucket_chance),
                skill_high=_skill(high, bucket_chance),
            )
        )
    if len(buckets) < 2:
        return LRDResult(score=None, horizon=None, buckets=tuple(buckets))
    horizon = 0
    for bucket in buckets:
        if bucket.skill < threshold:
            break
        horizon = bucket.max_distance
    return LRDResult(
        score=float(np.mean([b.skill for b in buckets])), horizon=horizon, buckets=tuple(buckets)
    )
