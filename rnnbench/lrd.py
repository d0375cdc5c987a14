"""The long-range-dependency (LRD) score: skill above chance per log2 distance bucket.

Test examples are grouped by ``distance`` into buckets [2^k, 2^(k+1)) (distance 0 joins the
first). In each bucket the normalised skill is ``s_b = clip((acc_b - chance_b) / (1 - chance_b), 0, 1)``;
``lrd_score`` is the mean of ``s_b`` over the buckets (in [0, 1]); ``lrd_horizon`` is the largest
distance, among the buckets whose skill is at least 0.9, of the examples in such a bucket (0 when
no bucket reaches 0.9).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

HORIZON_SKILL = 0.9


@dataclass(frozen=True)
class Bucket:
    low: int  # distances in [low, high)
    high: int
    max_distance: int  # the largest distance seen in the bucket
    count: int
    accuracy: float
    chance: float
    skill: float


@dataclass(frozen=True)
class LRDResult:
    score: float
    horizon: int
    buckets: tuple[Bucket, ...]

    def rows(self) -> list[dict[str, float | int]]:
        return [asdict(b) for b in self.buckets]


def lrd_score(
    distances: np.ndarray,
    scores: np.ndarray,
    chance: float | np.ndarray,
    threshold: float = HORIZON_SKILL,
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
    for k in np.unique(index):
        members = index == k
        accuracy = float(scores[members].mean())
        bucket_chance = float(chances[members].mean())
        skill = float(np.clip((accuracy - bucket_chance) / (1.0 - bucket_chance), 0.0, 1.0))
        buckets.append(
            Bucket(
                low=int(2**k) if k > 0 else 0,
                high=int(2 ** (k + 1)),
                max_distance=int(distances[members].max()),
                count=int(members.sum()),
                accuracy=accuracy,
                chance=bucket_chance,
                skill=skill,
            )
        )
    passing = [b.max_distance for b in buckets if b.skill >= threshold]
    return LRDResult(
        score=float(np.mean([b.skill for b in buckets])),
        horizon=max(passing, default=0),
        buckets=tuple(buckets),
    )
