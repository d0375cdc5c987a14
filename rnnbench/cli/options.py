"""The command line's options, declared once: their types and help (the commands in ``cli`` use them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
TrackingUri = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."),
]
Experiment = Annotated[str, typer.Option(help="MLflow experiment name.")]
TaskOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--option", "-o", help="A task option KEY=VALUE, repeatable (for example -o path=data.csv).",
        metavar="KEY=VALUE",
    ),
]  # fmt: skip

# rnnbench train
Cell = Annotated[str, typer.Option(help="Cell to train, as `rnnbench cells` lists it.")]
Task = Annotated[str, typer.Option(help="Task to train on, as `rnnbench tasks` lists it.")]
Depth = Annotated[int, typer.Option(help="Stacked recurrent layers.")]
Width = Annotated[int, typer.Option(help="Hidden units per layer.")]
Clip = Annotated[float, typer.Option(help="Gradient-norm clipping threshold; 0 turns clipping off.")]
Lr = Annotated[float, typer.Option(help="Learning rate.")]
Epochs = Annotated[int, typer.Option(help="Maximum epochs (passes over the training split).")]
BatchSize = Annotated[int, typer.Option(help="Examples per training step.")]
Seed = Annotated[int, typer.Option(help="Seed of the initialisation and the batch order.")]
DataSeed = Annotated[int, typer.Option(help="Seed of the task's data (keep it fixed to compare runs).")]
Length = Annotated[
    int | None, typer.Option(help="Sequence length T of the task (the task's default if not given).")
]
TrainSize = Annotated[int | None, typer.Option(help="Training examples (task default if not given).")]
ValidationSize = Annotated[int | None, typer.Option(help="Validation examples (task default if not given).")]
TestSize = Annotated[int | None, typer.Option(help="Test examples (task default if not given).")]
Optimizer = Annotated[
    str, typer.Option(help="adam, sgd (with momentum), nesterov (SGD with Nesterov momentum) or rmsprop.")
]
Momentum = Annotated[float, typer.Option(help="Momentum for sgd, nesterov and rmsprop.")]
WeightDecay = Annotated[float, typer.Option(help="L2 weight decay.")]
Dropout = Annotated[float, typer.Option(help="Dropout between stacked layers.")]
InputNoise = Annotated[
    float, typer.Option(help="Std of Gaussian noise added to real-valued inputs in training.")
]
Patience = Annotated[
    int, typer.Option(help="Stop after this many epochs without a better validation loss; 0: never.")
]
Threads = Annotated[int | None, typer.Option(help="torch threads (default: torch's choice).")]
Device = Annotated[str, typer.Option(help="auto (CUDA when available), cpu, cuda or cuda:N.")]
CacheDir = Annotated[
    Path | None, typer.Option(help="Task data cache (default: $RNNBENCH_CACHE_DIR or ~/.cache/rnnbench).")
]

# rnnbench sweep: None means "not given", so that a sweep file's value stands.
SweepFile = Annotated[
    Path | None, typer.Argument(help="A TOML sweep file with the same keys as the flags (flags win).")
]
SweepTask = Annotated[str | None, typer.Option(help="Task to sweep on (default adding).")]
SweepCells = Annotated[
    str | None,
    typer.Option(
        help="Cells to compare: comma-separated names, 'all' (lstm, gru, rnn, peephole) or 'odyssey' (Greff's vanilla LSTM and eight variants)."
    ),
]
Trials = Annotated[int | None, typer.Option(help="Trials per cell (default 8).")]
Space = Annotated[
    str | None, typer.Option(help="Search space (default 'default'; 'greff' for Greff et al.).")
]
SweepSeed = Annotated[
    int | None, typer.Option(help="Seed of the samplers and of every trial's initialisation.")
]
SweepEpochs = Annotated[int | None, typer.Option(help="Maximum epochs per trial (default 10).")]
SweepLength = Annotated[int | None, typer.Option(help="Sequence length T of the task.")]
SweepTaskOptions = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="A task option KEY=VALUE, repeatable.", metavar="KEY=VALUE"),
]
CpusPerTrial = Annotated[
    float | None, typer.Option(help="CPUs per trial (default 1); also its torch threads.")
]
GpusPerTrial = Annotated[
    float | None,
    typer.Option(
        help="GPUs per trial; fractions pack trials on one GPU (default 1 when the cluster has GPUs)."
    ),
]
MaxConcurrent = Annotated[
    int | None, typer.Option(help="Most trials at once (default: what resources allow).")
]
Address = Annotated[
    str | None, typer.Option(help="Join this Ray cluster (HOST:PORT) instead of starting Ray here.")
]
SweepExperiment = Annotated[str | None, typer.Option(help="MLflow experiment name (default rnnbench).")]
SweepName = Annotated[
    str | None, typer.Option(help="Sweep name (default TASK-DATE-TIME); names its folder and runs.")
]
Metric = Annotated[
    str | None, typer.Option(help="Validation metric for TPE and ASHA: val_loss (default) or val_accuracy.")
]
SweepsDir = Annotated[
    str | None,
    typer.Option(help="Folder of sweep state (settings, Optuna journal); default ./rnnbench-sweeps."),
]
SweepCacheDir = Annotated[str | None, typer.Option(help="Task data cache shared by the trials.")]
Resume = Annotated[
    str | None,
    typer.Option(help="Continue the interrupted sweep NAME to its requested trial counts.", metavar="NAME"),
]
Reseed = Annotated[
    int | None,
    typer.Option(min=0, help="After the search, re-train each cell's best configuration with K fresh seeds."),
]
Paired = Annotated[
    bool | None,
    typer.Option("--paired/--no-paired", help="Every cell trains the same configurations, drawn once per sweep "
                 "(default: on for the random sampler, off for TPE)."),
]  # fmt: skip
SweepJson = Annotated[bool, typer.Option("--json", help="No live display; print the result as JSON.")]

# rnnbench leaderboard
BoardTask = Annotated[str | None, typer.Option(help="Only this task (default: every task with trials).")]
BoardSweep = Annotated[str | None, typer.Option(help="Only the trials of this sweep (default: all sweeps).")]
BoardMetric = Annotated[str, typer.Option(help="Rank by lrd_score or test_accuracy.")]
Format = Annotated[str, typer.Option("--format", help="table, markdown, html, csv or json.")]
Publish = Annotated[
    Path | None,
    typer.Option(help="Also write README.md, a self-contained index.html and the plots into this folder."),
]
Plots = Annotated[
    bool, typer.Option("--plots/--no-plots", help="Log the plots to each sweep's MLflow parent run.")
]
BoardSetup = Annotated[
    str | None, typer.Option(help="Only this set-up (its id, as each table's heading shows: adding-1a2b3c).")
]
Baseline = Annotated[
    str | None, typer.Option(help="Test every cell against this cell instead of against each rank's leader.")
]
MinTrials = Annotated[
    int, typer.Option(help="Completed trials a cell needs before its fANOVA importances are shown.")
]
RecomputeImportance = Annotated[
    bool,
    typer.Option("--recompute-importance", help="Recompute fANOVA rather than read what each sweep kept when "
                 "it ended (it is recomputed anyway where the trials changed since)."),
]  # fmt: skip
Note = Annotated[
    str | None, typer.Option(help="A line for the published page (for example how to reproduce it).")
]
StudySweeps = Annotated[
    list[str], typer.Option("--sweep", help="A sweep of the study, one per task (repeat the option).")
]
StudyOut = Annotated[Path, typer.Option("--out", help="Folder for README.md, index.html and the plots.")]
Margin = Annotated[
    float,
    typer.Option(help="Equivalence margin of the verdicts: two cells are 'equivalent' when two one-sided tests "
                 "place their difference within +-MARGIN."),
]  # fmt: skip
FromData = Annotated[
    list[Path] | None,
    typer.Option("--from", help="Build from exported data (rnnbench export: a .parquet file or a folder of them) "
                 "instead of MLflow; repeatable."),
]  # fmt: skip
AggregateFlag = Annotated[
    bool,
    typer.Option("--aggregate", help="Also print each cell's normalised score over set-ups (IQM, stratified "
                 "bootstrap CI) and the probability of improvement between cells."),
]  # fmt: skip
ExportOut = Annotated[Path, typer.Option("--out", help="The parquet file to write (folders are created).")]
ExportSweeps = Annotated[
    list[str] | None, typer.Option("--sweep", help="Export this sweep (repeatable; default: every sweep).")
]
Force = Annotated[
    bool,
    typer.Option(
        "--force", help="Publish into a folder whose README.md or index.html rnnbench did not write."
    ),
]
Wide = Annotated[
    bool,
    typer.Option(
        "--wide", help="Show every column in the terminal: the search, paired comparisons, budgets."
    ),
]


# rnnbench check-cell
CellName = Annotated[str, typer.Argument(help="The registered cell name, as `rnnbench cells` lists it.")]
KitInputSize = Annotated[int, typer.Option(min=1, help="Input features of the test cell.")]
KitHiddenSize = Annotated[int, typer.Option(min=1, help="Hidden units of the test cell.")]
KitLayers = Annotated[int, typer.Option(min=1, help="Stacked layers of the test cell.")]
KitDropout = Annotated[float, typer.Option(min=0.0, max=0.99, help="Dropout between layers.")]
KitSeed = Annotated[int, typer.Option(help="Seed for the builds and inputs.")]
KitDevice = Annotated[
    str | None,
    typer.Option(help="Accelerator for the device-move check (default: cuda or mps when present)."),
]

# rnnbench reseed
ReseedSweep = Annotated[str, typer.Option(help="The sweep whose best configurations to re-train.")]
ReseedSeeds = Annotated[int, typer.Option(min=1, help="Fresh seeds per cell.")]
ReseedCacheDir = Annotated[str | None, typer.Option(help="Task data cache.")]

# rnnbench status, rnnbench dashboard: a sweep by its folder
SweepFolderName = Annotated[str, typer.Argument(help="The sweep (its folder name under --sweeps-dir).")]
RequireLearned = Annotated[
    str | None,
    typer.Option(help="Exit 3 unless this cell's median completed trial left chance (a study's pilot).",
                 metavar="CELL"),
]  # fmt: skip

# rnnbench ui, rnnbench dashboard: servers
Host = Annotated[
    str,
    typer.Option(help="Interface to bind; 127.0.0.1 keeps it on this machine (anything else exposes it)."),
]
UiPort = Annotated[int, typer.Option(help="Port of the MLflow UI.")]
UiSweep = Annotated[
    str | None, typer.Option(help="The sweep whose runs to open (default: the latest sweep).")
]
UiMetric = Annotated[str, typer.Option(help="Sort the runs by this metric, best first.")]
UiWorkers = Annotated[int, typer.Option(min=1, help="Server worker processes (one answers soonest).")]
DashboardPort = Annotated[int, typer.Option(help="Port of the dashboard.")]
AllowWrites = Annotated[
    bool, typer.Option("--allow-writes", help="Let the dashboard change the study (notes, deletions).")
]
Verbose = Annotated[bool, typer.Option("--verbose", help="Print the server's access log.")]
