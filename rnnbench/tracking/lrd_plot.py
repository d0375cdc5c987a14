"""A trial's LRD curve as a PNG (lrd_curve.png), drawn in about a quarter of a full matplotlib draw.

The sweep draws one per trial on the driver, so its cost is paid per trial: a full draw took 0.2 s of CPU
(most of it the axes' tick labels, axis labels and legend, the same in every plot of a sweep, whose trials
share one test set and so one set of distance buckets). The frame (axes, ticks, labels, legend) is drawn
once per set of buckets and kept; each plot restores it and draws only the trial's own artists over it:
the curves, the bucket counts and the title (matplotlib's blitting).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.training.lrd import HORIZON_SKILL, SkillBand

if TYPE_CHECKING:
    from rnnbench.training.lrd import LRDResult

FRAMES_KEPT = 8  # sets of buckets: a sweep has one per task; a process that plots more evicts the oldest
SKILL = {"marker": "o", "capsize": 3, "color": "C0"}
ACCURACY = {"marker": ".", "linestyle": ":", "color": "C1"}
THRESHOLD = {"color": "grey", "linewidth": 0.8, "linestyle": "--"}
LABELS = ("normalised skill (95 % CI)", "accuracy", f"horizon threshold ({HORIZON_SKILL})")


class _Frame:
    """The figure of one set of bucket centres with everything but the trial's own artists drawn."""

    def __init__(self, centres: tuple[float, ...]) -> None:
        from matplotlib import ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        self.centres = centres
        self.figure = Figure(figsize=(6, 4.3), dpi=100)
        self.canvas = FigureCanvasAgg(self.figure)
        axis = self.axis = self.figure.add_subplot()
        axis.axhline(HORIZON_SKILL, **THRESHOLD)
        axis.set_xscale("log", base=2)
        # The x range every trial's curve gets: autoscaled on the centres once, then fixed.
        axis.plot(centres, [0.5] * len(centres), visible=False)
        # Distances as plain numbers: mathtext's 2^k labels took a third of a full draw.
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_locator(ticker.NullLocator())
        axis.set_ylim(-0.02, 1.02)
        axis.set_xlabel("distance (steps, log2 buckets: lower edge)")
        axis.set_ylabel("normalised skill, accuracy")
        handles = [
            axis.errorbar([], [], yerr=[[], []], **SKILL),
            Line2D([], [], **ACCURACY),
            Line2D([], [], **THRESHOLD),
        ]
        # Below the axes, not at matplotlib's "best" place: that place depends on the curves, which the
        # kept frame cannot.
        self.figure.legend(handles, LABELS, loc="lower center", ncols=3, fontsize=8, frameon=False)
        self.figure.subplots_adjust(left=0.1, right=0.97, bottom=0.19, top=0.88)
        self.canvas.draw()
        axis.set_autoscale_on(False)
        self.background = self.canvas.copy_from_bbox(self.figure.bbox)

    def draw(self, lrd: LRDResult, title: str, path: Path) -> None:
        from PIL import Image

        axis = self.axis
        self.canvas.restore_region(self.background)
        centres = self.centres  # the trial's: frames are kept per set of bucket centres
        bands = [SkillBand.of(b.skill, b.skill_low, b.skill_high) for b in lrd.buckets]  # 95 % binomial
        before, containers = set(axis.get_children()), list(axis.containers)
        try:
            axis.errorbar(
                centres,
                [b.skill for b in lrd.buckets],
                yerr=[[band.below for band in bands], [band.above for band in bands]],
                **SKILL,
            )
            axis.plot(centres, [b.accuracy for b in lrd.buckets], **ACCURACY)
            for centre, bucket in zip(centres, lrd.buckets, strict=True):
                axis.annotate(f"n={bucket.count}", (centre, bucket.skill), textcoords="offset points",
                              xytext=(0, 8), fontsize=7, ha="center")  # fmt: skip
            trial: list[Any] = [a for a in axis.get_children() if a not in before]
            axis.set_title(title, fontsize=9)
            for artist in [*sorted(trial, key=lambda a: a.get_zorder()), axis.title]:
                axis.draw_artist(artist)
        finally:
            # The frame is kept: nothing of this trial may stay in it, drawn or not (errorbar's container
            # holds its lines too), even when drawing failed half-way.
            for container in [c for c in axis.containers if c not in containers]:
                container.remove()
            for artist in [a for a in axis.get_children() if a not in before]:
                artist.remove()
            axis.set_title("")
        width, height = self.canvas.get_width_height()
        image = Image.frombuffer("RGBA", (width, height), self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        image.save(path, format="png")


_frames: OrderedDict[tuple[float, ...], _Frame] = OrderedDict()
_lock = threading.Lock()  # a frame's canvas is drawn by one thread at a time (a sweep plots from a pool)


def write_lrd_plot(lrd: LRDResult, folder: Path, title: str) -> Path:
    """lrd_curve.png in ``folder``: the skill per distance bucket with its 95 % interval, the accuracy, the
    horizon threshold and each bucket's count; ``title`` over the LRD score and horizon."""
    measured = f"LRD score {lrd.score:.3f}, horizon {lrd.horizon}" if lrd.measured else (
        "one distance bucket: no LRD measure"
    )  # fmt: skip
    centres = tuple(float(max(b.low, 1)) for b in lrd.buckets)  # log2 axis: the first bucket starts at 0
    path = folder / "lrd_curve.png"
    with _lock:
        frame = _frames.pop(centres, None) or _Frame(centres)
        _frames[centres] = frame
        while len(_frames) > FRAMES_KEPT:
            _frames.popitem(last=False)
        frame.draw(lrd, f"{title}\n{measured}", path)
    return path
