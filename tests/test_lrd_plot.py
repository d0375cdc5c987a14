"""The trial's LRD plot drawn over a kept frame: each plot shows its own trial only, from any thread."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rnnbench.tracking import lrd_plot
from rnnbench.training.lrd import LRDResult, lrd_score

DISTANCES = np.arange(1, 129).repeat(4)


def curve(fails_beyond: int, seed: int = 0, distances: np.ndarray = DISTANCES) -> LRDResult:
    guesses = np.random.default_rng(seed).random(distances.size) < 0.5
    return lrd_score(distances, np.where(distances < fails_beyond, 1.0, guesses), chance=0.5, min_count=30)


def pixels(lrd: LRDResult, title: str, folder: Path) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    return np.asarray(Image.open(lrd_plot.write_lrd_plot(lrd, folder, title)).convert("RGB"))


@pytest.fixture
def fresh_frames():
    """No frame kept from another test: the first plot here draws its frame."""
    kept = dict(lrd_plot._frames)
    lrd_plot._frames.clear()
    yield
    lrd_plot._frames.clear()
    lrd_plot._frames.update(kept)


def test_a_plot_over_a_kept_frame_is_the_plot_drawn_on_a_new_one(tmp_path, fresh_frames):
    short, long = curve(8), curve(100, seed=1)
    alone = pixels(long, "gru on adding, trial 1", tmp_path / "alone")
    lrd_plot._frames.clear()
    pixels(short, "gru on adding, trial 0", tmp_path / "first")
    assert len(lrd_plot._frames) == 1, "one frame for the trials' one set of buckets"
    (frame,) = lrd_plot._frames.values()
    kept, containers = frame.axis.get_children(), list(frame.axis.containers)
    after = pixels(long, "gru on adding, trial 1", tmp_path / "after")
    assert frame.axis.get_children() == kept, "no trial's artists pile up in the kept frame"
    assert frame.axis.containers == containers, "nor their error bars' containers"
    assert np.array_equal(after, alone), "nothing of the first trial (curves, counts, title) is left"
    assert not np.array_equal(pixels(short, "gru on adding, trial 0", tmp_path / "again"), alone)


def test_the_title_counts_and_measure_are_the_trials(tmp_path, fresh_frames):
    lrd = curve(40)
    base = pixels(lrd, "gru on adding, trial 3", tmp_path / "a")
    assert not np.array_equal(base, pixels(lrd, "gru on adding, trial 4", tmp_path / "b")), "the title"
    fewer = LRDResult(lrd.score, lrd.horizon, (replace(lrd.buckets[0], count=9), *lrd.buckets[1:]))
    assert not np.array_equal(base, pixels(fewer, "gru on adding, trial 3", tmp_path / "c")), "a count"
    unmeasured = LRDResult(None, None, lrd.buckets)
    assert not np.array_equal(base, pixels(unmeasured, "gru on adding, trial 3", tmp_path / "d"))


def test_each_set_of_buckets_gets_its_frame_and_the_least_recently_used_goes(tmp_path, fresh_frames):
    sets = [curve(8, distances=np.arange(1, 2**k + 1).repeat(40)) for k in range(2, 4 + lrd_plot.FRAMES_KEPT)]
    keys = [tuple(float(max(b.low, 1)) for b in s.buckets) for s in sets]
    assert len(set(keys)) == len(sets) == lrd_plot.FRAMES_KEPT + 2
    first = pixels(sets[0], "t", tmp_path / "0")
    for k, lrd in enumerate(sets[1 : lrd_plot.FRAMES_KEPT], start=1):
        pixels(lrd, "t", tmp_path / str(k))
    oldest = lrd_plot._frames[keys[0]]
    pixels(sets[0], "t", tmp_path / "used")  # the oldest is used again: the second oldest goes next
    for k in (lrd_plot.FRAMES_KEPT, lrd_plot.FRAMES_KEPT + 1):
        pixels(sets[k], "t", tmp_path / str(k))
    assert len(lrd_plot._frames) == lrd_plot.FRAMES_KEPT
    assert lrd_plot._frames.get(keys[0]) is oldest, "the frame used last is kept"
    assert keys[1] not in lrd_plot._frames and keys[2] not in lrd_plot._frames
    assert np.array_equal(pixels(sets[1], "t", tmp_path / "again"), pixels(sets[1], "t", tmp_path / "1b"))
    assert np.array_equal(pixels(sets[0], "t", tmp_path / "same"), first)


def test_a_plot_that_fails_half_way_leaves_nothing_in_the_kept_frame(tmp_path, fresh_frames, monkeypatch):
    from matplotlib.axes import Axes

    short, long = curve(8), curve(100, seed=1)
    alone = pixels(long, "trial 1", tmp_path / "alone")
    (frame,) = lrd_plot._frames.values()
    kept, containers = frame.axis.get_children(), list(frame.axis.containers)

    def broken(*args, **kwargs):
        raise RuntimeError("a font went missing")

    monkeypatch.setattr(Axes, "annotate", broken)  # after the error bars and the accuracy line
    with pytest.raises(RuntimeError, match="a font went missing"):
        lrd_plot.write_lrd_plot(short, tmp_path, "trial 0")
    monkeypatch.undo()
    assert frame.axis.get_children() == kept and frame.axis.containers == containers
    assert np.array_equal(pixels(long, "trial 1", tmp_path / "after"), alone)


def test_one_bucket_and_unmeasured_intervals_plot(tmp_path, fresh_frames):
    one = lrd_score(np.full(64, 5), np.ones(64), chance=0.5, min_count=30)
    assert not one.measured and len(one.buckets) == 1
    assert pixels(one, "rnn on parity", tmp_path / "one").shape == (430, 600, 3)
    old = replace(one.buckets[0], skill_low=math.nan, skill_high=math.nan)
    assert pixels(LRDResult(None, None, (old,)), "rnn on parity", tmp_path / "old").shape == (430, 600, 3)


def test_plots_from_several_threads_are_each_their_own(tmp_path, fresh_frames):
    curves = [curve(2**k, seed=k) for k in range(2, 8)]
    alone = [pixels(c, f"trial {k}", tmp_path / f"alone{k}") for k, c in enumerate(curves)]
    with ThreadPoolExecutor(4) as pool:
        drawn = list(
            pool.map(lambda k: pixels(curves[k % 6], f"trial {k % 6}", tmp_path / f"t{k}"), range(24))
        )
    assert all(np.array_equal(image, alone[k % 6]) for k, image in enumerate(drawn))


def test_a_curve_of_one_distance_bucket_is_logged_as_its_table_without_a_plot(tmp_path, fresh_frames):
    """One bucket is one point and no LRD measure (any hf or mnist1d set-up, or a test set too small for two
    buckets): the run gets the table, as the leaderboard draws no LRD curve for it; two buckets or more get
    the plot too."""
    from rnnbench.tracking.recorder import write_lrd_artifacts

    one = curve(8, distances=np.full(64, 3))
    assert len(one.buckets) == 1 and not one.measured
    (tmp_path / "one").mkdir()
    assert [p.name for p in write_lrd_artifacts(one, tmp_path / "one", "rnn on hf, trial 0")] == [
        "lrd_curve.csv"
    ]
    many = curve(40)
    (tmp_path / "many").mkdir()
    written = write_lrd_artifacts(many, tmp_path / "many", "rnn on adding, trial 0")
    assert [p.name for p in written] == ["lrd_curve.csv", "lrd_curve.png"] and written[1].stat().st_size > 0
