"""Task generators: shapes, determinism, distances, chance levels, caching, and option errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import rnnbench
from rnnbench.errors import TaskOptionError
from rnnbench.tasks.adding import Adding
from rnnbench.tasks.columns import write_columns
from rnnbench.tasks.copy import BLANK, DELIMITER, RECALL, Copy
from rnnbench.tasks.temporal_order import END, START, TemporalOrder, X, Y

SMALL = {"train_size": 300, "validation_size": 50, "test_size": 400}


def columns(task, split="test", seed=0, cache=None):
    data = task.load(seed=seed, cache_dir=cache)
    return {k: np.asarray(v) for k, v in data[split].with_format("numpy")[:].items()}


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def buckets(distances):
    return set(np.floor(np.log2(np.maximum(distances, 1))).astype(int))


@pytest.mark.parametrize("name", ["adding", "copy", "temporal_order", "digits"])
def test_every_split_is_deterministic_and_seed_dependent(name, cache, tmp_path):
    options = {} if name == "digits" else {"length": 40, **SMALL}
    task = rnnbench.get_task(name).build(**options)
    first = task.load(seed=3, cache_dir=cache)
    again = task.load(seed=3, cache_dir=tmp_path / "elsewhere")  # generated afresh, not read back
    other = task.load(seed=4, cache_dir=cache)
    for split in ("train", "validation", "test"):
        a, b, c = (d[split].with_format("numpy")[:] for d in (first, again, other))
        assert set(a) == {"inputs", "target", "distance", "length"}
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a["inputs"], c["inputs"])
        assert len(a["target"]) == task.sizes.of(split)


def test_adding_examples(cache):
    task = Adding(length=64, **SMALL)
    data = columns(task, cache=cache)
    inputs, target, distance, length = data["inputs"], data["target"], data["distance"], data["length"]
    assert inputs.shape == (400, 64, 2) and inputs.dtype == np.float32 and task.input_size == 2
    markers = inputs[:, :, 1]
    assert (markers.sum(1) == 2).all()
    rows = np.arange(len(target))
    marked = np.argwhere(markers == 1).reshape(-1, 2, 2)[:, :, 1]
    np.testing.assert_allclose(
        target, inputs[rows, marked[:, 0], 0] + inputs[rows, marked[:, 1], 0], rtol=1e-6
    )
    np.testing.assert_array_equal(distance, 63 - marked[:, 0])
    start = 64 - length
    half = length // 2
    assert ((marked[:, 0] >= start) & (marked[:, 0] < start + half)).all(), "first marker in the first half"
    assert ((marked[:, 1] >= start + half) & (marked[:, 1] < 64)).all(), "second marker in the second half"
    padding = np.arange(64)[None, :] < start[:, None]
    assert (inputs[padding] == 0).all()
    assert len(buckets(distance)) >= 4, "test distances must span several log2 buckets"


def test_adding_chance_is_the_success_rate_of_always_predicting_one(cache):
    task = Adding(length=16, train_size=10, validation_size=10, test_size=20_000)
    target = columns(task, cache=cache)["target"]
    assert np.mean(np.abs(1.0 - target) < task.tolerance) == pytest.approx(task.chance, abs=0.01)
    assert task.chance == pytest.approx(0.0784)


def test_adding_classic_fixed_length(cache):
    data = columns(Adding(length=30, spread=1, **SMALL), cache=cache)
    assert (data["length"] == 30).all()


def test_copy_examples(cache):
    task = Copy(length=50, **SMALL)
    data = columns(task, cache=cache)
    inputs, target, distance, length = data["inputs"], data["target"], data["distance"], data["length"]
    assert inputs.shape == target.shape == (400, 70)
    assert task.input_size == 10 and task.output_size == 9 and task.chance == 1 / 8
    assert (inputs[:, 50 + RECALL - 1] == DELIMITER).all()
    for i in range(0, 400, 37):
        start = 70 - length[i]
        symbols = inputs[i, start : start + RECALL]
        assert ((symbols >= 1) & (symbols <= 8)).all()
        np.testing.assert_array_equal(target[i, -RECALL:], symbols)
        assert (target[i, start:-RECALL] == BLANK).all() and (target[i, :start] == -100).all()
        recalled_at = 70 - RECALL  # the first recalled symbol's output step
        assert distance[i] == recalled_at - start == length[i] - RECALL
    assert len(buckets(distance)) >= 2


def test_copy_baseline_is_ten_log_eight_over_t_plus_twenty():
    task = Copy(length=100, spread=1)
    assert task.baseline_loss(np.array([120, 120])) == pytest.approx(10 * np.log(8) / 120)


def test_copy_accuracy_counts_recalled_symbols_only():
    import torch

    task = Copy(length=2, spread=1)
    target = torch.tensor([[0, 0, 0, 3, 4], [-100, 0, 0, 5, 6]])
    logits = torch.nn.functional.one_hot(torch.tensor([[0, 0, 0, 3, 1], [0, 7, 7, 5, 6]]), 9).float()
    np.testing.assert_allclose(task.example_scores(logits, target).numpy(), [0.5, 1.0])


@pytest.mark.parametrize(("symbols", "classes"), [(2, 4), (3, 8)])
def test_temporal_order_examples(symbols, classes, cache):
    task = TemporalOrder(length=60, symbols=symbols, **SMALL)
    data = columns(task, cache=cache)
    inputs, target, distance, length = data["inputs"], data["target"], data["distance"], data["length"]
    assert task.output_size == classes and task.chance == 1 / classes
    assert set(np.unique(target)) == set(range(classes))
    assert (inputs[:, -1] == END).all()
    assert (inputs[np.arange(400), 60 - length] == START).all()
    for i in range(400):
        relevant = np.flatnonzero(np.isin(inputs[i], [X, Y]))
        assert len(relevant) == symbols
        bits = (inputs[i, relevant] == Y).astype(int)
        assert target[i] == int("".join(map(str, bits)), 2)
        assert distance[i] == 59 - relevant[0]
    counts = np.bincount(target, minlength=classes) / len(target)
    assert np.abs(counts - 1 / classes).max() < 0.08, "classes are balanced, so chance is 1/classes"


def test_digits_real_data(cache):
    task = rnnbench.get_task("digits").build()
    data = task.load(seed=0, cache_dir=cache)
    arrays = {s: data[s].with_format("numpy")[:] for s in ("train", "validation", "test")}
    assert arrays["train"]["inputs"].shape == (1297, 64, 1)
    assert 0 <= arrays["train"]["inputs"].min() and arrays["train"]["inputs"].max() <= 1
    assert set(np.unique(arrays["train"]["target"])) == set(range(10))
    seen = [{row.tobytes() for row in arrays[s]["inputs"]} for s in arrays]
    assert sum(len(s) for s in seen) - len(set.union(*seen)) <= 5, (
        "splits are (almost surely) disjoint images"
    )
    assert (arrays["test"]["distance"] <= 63).all()


def test_cache_is_reused_and_keyed_by_data_version(cache, monkeypatch):
    task = Adding(length=20, **SMALL)
    task.load(seed=0, cache_dir=cache)
    entries = list((cache / "tasks" / "adding").rglob("dataset_dict.json"))
    assert len(entries) == 1 and entries[0].parent.parent.name == Adding.data_version

    def fail(*args, **kwargs):
        raise AssertionError("a cached split must not be regenerated")

    monkeypatch.setattr(Adding, "generate", fail)
    task.load(seed=0, cache_dir=cache)
    monkeypatch.setattr(Adding, "data_version", "adding-test-bump")
    with pytest.raises(AssertionError, match="must not be regenerated"):
        task.load(seed=0, cache_dir=cache)
    assert not list(cache.rglob(".partial-*")), "a failed generation leaves no partial cache entry"


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNBENCH_CACHE_DIR", str(tmp_path / "envcache"))
    Adding(length=20, **SMALL).load(seed=0)
    assert list((tmp_path / "envcache" / "tasks" / "adding").rglob("dataset_dict.json"))


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("adding", {"length": 3}, "task 'adding': length 3 is too short; the minimum is 4"),
        ("adding", {"length": 0}, "task 'adding': length must be a positive integer, got 0"),
        ("adding", {"train_size": -5}, "task 'adding': train_size must be a positive integer, got -5"),
        ("adding", {"spread": 0.5}, "spread must be a number >= 1"),
        ("copy", {"test_size": 2.5}, "task 'copy': test_size must be a positive integer, got 2.5"),
        ("temporal_order", {"length": 8}, "length 8 is too short; the minimum is 12"),
        ("temporal_order", {"symbols": 4}, "symbols must be 2 \\(4 classes\\) or 3 \\(8 classes\\), got 4"),
        ("digits", {"length": 100}, "the length is fixed at 64 pixels, got 100"),
        ("digits", {"train_size": 1700}, "add up to 2200, but the data set has 1797 images"),
    ],
)
def test_bad_task_options(name, options, message):
    with pytest.raises(TaskOptionError, match=message):
        rnnbench.get_task(name).build(**options)


@pytest.mark.parametrize("name", ["adding", "copy", "temporal_order", "digits", "mnist1d", "hf"])
def test_a_task_built_from_the_options_it_records_is_the_same_task(name):
    """A run records its task's options (MLflow params ``task.*``) and ``rnnbench reseed`` rebuilds the task
    from them, strings and all: each option must be one the constructor takes. (hf recorded 0, every example,
    for its sizes, and refused 0: no hf sweep could be reseeded.)"""
    from rnnbench.sweep.reseed import config_from_params

    given = {"path": "data.csv"} if name == "hf" else {}
    task = rnnbench.get_task(name).build(**given)
    recorded = {f"task.{key}": str(value) for key, value in task.options().items()}  # as MLflow keeps them
    config = config_from_params({"cell": "gru", "task": name, **recorded})
    assert rnnbench.get_task(name).build(**config.task_options).options() == task.options()


def test_unknown_task_option_names_the_task():
    with pytest.raises(
        TaskOptionError, match="task 'adding' has no option 'lenght'; its options: length, spread"
    ):
        rnnbench.get_task("adding").build(lenght=100)


# --- the generic datasets.load_dataset task, on local files only ---------------------------------


@pytest.fixture
def csv_files(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for split, size in (("train", 60), ("test", 20)):
        lines = ["sequence,label"]
        for _ in range(size):
            n = int(rng.integers(3, 12))
            values = rng.random(n).round(3)
            label = "up" if values[-1] > values[0] else "down"
            lines.append(f'"{" ".join(map(str, values))}",{label}')
        paths[split] = tmp_path / f"{split}.csv"
        paths[split].write_text("\n".join(lines) + "\n")
    return paths


def test_hf_task_on_local_csv(csv_files, cache):
    files = f"train={csv_files['train']},test={csv_files['test']}"
    task = rnnbench.get_task("hf").build(path="csv", data_files=files)
    data = task.load(seed=0, cache_dir=cache)
    assert {s: len(data[s]) for s in data} == {"train": 54, "validation": 6, "test": 20}
    assert task.encoding == "linear" and task.input_size == 1 and task.output_size == 2
    test = data["test"].with_format("numpy")[:]
    assert test["inputs"].shape[1:] == (11, 1)
    np.testing.assert_array_equal(test["distance"], test["length"] - 1)
    assert 0.5 <= task.chance < 1
    again = rnnbench.get_task("hf").build(path="csv", data_files=files).load(seed=0, cache_dir=cache)
    np.testing.assert_array_equal(again["train"]["target"], data["train"]["target"])


def test_hf_task_on_parquet_lists_and_json_text(tmp_path, cache):
    import datasets

    datasets.Dataset.from_dict(
        {"tokens": [[1, 2, 3], [4, 5], [6], [2, 2, 2, 2]] * 10, "y": [0, 1, 0, 2] * 10}
    ).to_parquet(str(tmp_path / "tokens.parquet"))
    task = rnnbench.get_task("hf").build(
        path=str(tmp_path / "tokens.parquet"), sequence_column="tokens", label_column="y", max_length=3
    )
    data = task.load(seed=1, cache_dir=cache)
    assert (
        task.encoding == "one-hot" and task.input_size == 8 and task.output_size == 3
    )  # tokens 0..6 shifted by one, 0 pads
    train = data["train"].with_format("numpy")[:]
    assert train["inputs"].shape[1] == 3 and train["length"].max() == 3
    rows = [{"text": word, "label": int(len(word) > 3)} for word in ["cat", "horse", "ox", "zebra"] * 10]
    (tmp_path / "words.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    words = rnnbench.get_task("hf").build(path=str(tmp_path / "words.jsonl"), sequence_column="text")
    words.load(seed=0, cache_dir=cache)
    assert words.encoding == "one-hot" and words.input_size == 257


def test_hf_task_missing_column_names_file_and_columns(csv_files, cache):
    task = rnnbench.get_task("hf").build(path=str(csv_files["train"]), label_column="target")
    with pytest.raises(TaskOptionError) as info:
        task.load(cache_dir=cache)
    message = str(info.value)
    assert str(csv_files["train"]) in message and "no column 'target'" in message
    assert "option label_column" in message and "its columns are: sequence, label" in message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "task 'hf' needs the option path"),
        ({"path": "missing.csv"}, "data file missing.csv does not exist"),
        ({"path": "csv", "data_files": "train=nope.csv"}, "data file nope.csv does not exist"),
        ({"path": "csv", "data_files": "dev=a.csv,test"}, "must be SPLIT=FILE"),
        ({"path": "csv", "encoding": "utf-9"}, "encoding must be auto, linear, one-hot or chars"),
    ],
)
def test_hf_task_bad_options(options, message, cache):
    with pytest.raises(TaskOptionError, match=message):
        rnnbench.get_task("hf").build(**options).load(cache_dir=cache)


def test_mnist1d_is_the_standard_split_built_offline(cache, monkeypatch):
    import mnist1d.data
    from mnist1d.data import get_dataset_args, make_dataset

    from rnnbench.tasks.mnist1d import standard_dataset

    generated: list[bool] = []  # 6 s each: every split of a variant is cut from one generation

    def counted(args):
        generated.append(args.shuffle_seq)
        return make_dataset(args)

    monkeypatch.setattr(mnist1d.data, "make_dataset", counted)
    standard_dataset.cache_clear()
    task = rnnbench.get_task("mnist1d").build()
    data = task.load(seed=0, cache_dir=cache)
    assert generated == [False], "the three splits come from one generation"
    assert not standard_dataset(False)["x"].flags.writeable, "the kept arrays cannot be changed by a caller"
    assert {s: len(data[s]) for s in ("train", "validation", "test")} == {
        "train": 3500,
        "validation": 500,
        "test": 1000,
    }
    test = columns(task, "test", cache=cache)
    assert test["inputs"].shape == (1000, 40, 1) and set(np.unique(test["target"])) == set(range(10))
    reference = make_dataset(get_dataset_args())
    assert np.allclose(test["inputs"][:, :, 0], reference["x_test"], atol=1e-6), "the standard test set"
    train, validation = columns(task, "train", cache=cache), columns(task, "validation", cache=cache)
    rows = {tuple(np.round(r[:, 0], 5)) for r in train["inputs"]}
    assert not rows & {tuple(np.round(r[:, 0], 5)) for r in validation["inputs"]}, (
        "validation carved from train"
    )
    assert (test["distance"] == 39).all() and task.chance == 0.1
    shuffled = columns(rnnbench.get_task("mnist1d").build(shuffled=True), "test", cache=cache)
    columns(rnnbench.get_task("mnist1d").build(validation_size=100), "validation", cache=cache)
    assert generated == [False, True], "one generation per variant, whatever the sizes"
    assert (
        not np.allclose(shuffled["inputs"], test["inputs"]) and (shuffled["target"] == test["target"]).all()
    )
    assert np.allclose(np.sort(shuffled["inputs"], axis=1), np.sort(test["inputs"], axis=1), atol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"length": 50}, "the length is fixed at 40 steps, got 50"),
        ({"train_size": 3800, "validation_size": 500}, "the standard training set has 4000 examples"),
        ({"test_size": 1001}, "more than the standard test set's 1000"),
        ({"shuffled": "yes"}, "shuffled must be true or false, got 'yes'"),
    ],
)
def test_mnist1d_bad_options(options, message):
    with pytest.raises(TaskOptionError, match=message):
        rnnbench.get_task("mnist1d").build(**options)


GOOD = '"1 2 3",0\n"6 7",1\n' * 20


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('sequence,label\n"1 2 3",a\n"4 5",b,extra,cells\n"6 7",a\n', "could not be read:"),
        ("", "could not be read:"),
        ("sequence,label\n", "holds no examples"),
        (
            'sequence,label\n"1 2 3",0\n"6 7",1\n',
            "the train split has 2 examples, too few to carve validation and test",
        ),
        ('sequence,label\n"4 5",\n' + GOOD, "column 'label' of split "),
        ('sequence,label\n"4 nan 5",1\n' + GOOD, "holds a number that is not finite ('4 nan 5')"),
        ('sequence,label\n"4 inf",1\n' + GOOD, "holds a number that is not finite ('4 inf')"),
    ],
)
def test_hf_task_on_a_broken_csv_names_the_file_and_the_problem(tmp_path, cache, content, message, capfd):
    """Each of these once ended in a traceback (or, for nan/inf, silently as one-hot text)."""
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(TaskOptionError, match=re.escape(message)):
        rnnbench.get_task("hf").build(path=str(path)).load(seed=0, cache_dir=cache)
    assert "Failed to read file" not in capfd.readouterr().err, "one error, not datasets' log line too"


def test_hf_task_refuses_padding_that_cannot_fit_in_memory(tmp_path, cache, monkeypatch):
    from rnnbench.tasks import base

    monkeypatch.setattr(base, "physical_memory", lambda: 2**30)  # a 1 GiB machine
    long_row = " ".join(["0.5"] * 1_000_000)
    rows = ['"1 2 3",0'] * 199 + [f'"{long_row}",1']
    (tmp_path / "long.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    task = rnnbench.get_task("hf").build(path=str(tmp_path / "long.csv"))
    with pytest.raises(TaskOptionError, match=r"padded to 1000000 steps .* set -o max_length=N"):
        task.load(seed=0, cache_dir=cache)
    capped = rnnbench.get_task("hf").build(path=str(tmp_path / "long.csv"), max_length=50)
    assert capped.load(seed=0, cache_dir=cache)["train"].num_rows > 0


@pytest.mark.parametrize("name", ["adding", "copy", "temporal_order", "digits", "mnist1d"])
def test_a_cached_tasks_columns_give_the_tensors_datasets_gives(name, cache):
    """A trial's worker reads the cached columns without datasets: the same tensors, dtypes and all, and the
    same input example for its logged model."""
    import torch

    from rnnbench.tasks.columns import Columns, split_tensors
    from rnnbench.training.recipe import input_example

    options = {"train_size": 40, "validation_size": 8, "test_size": 24}
    if name != "digits":
        options["length"] = 20 if name != "mnist1d" else None
    task = rnnbench.get_task(name).build(**{k: v for k, v in options.items() if v is not None})
    assert task.load_columns(seed=3, cache_dir=cache) is None, "nothing cached yet"
    splits = task.load(seed=3, cache_dir=cache)
    kept = task.load_columns(seed=3, cache_dir=cache)
    assert (
        kept is not None and set(kept) == set(splits) and all(isinstance(c, Columns) for c in kept.values())
    )
    for split in splits:
        ours, theirs = (
            split_tensors(kept[split], device=torch.device("cpu")),
            split_tensors(splits[split], device=torch.device("cpu")),
        )
        assert set(ours) == set(theirs)
        for column in theirs:
            assert ours[column].dtype == theirs[column].dtype, (split, column)
            assert torch.equal(ours[column], theirs[column]), (split, column)
    assert torch.equal(input_example(kept), input_example(splits))


def test_an_entry_cached_before_columns_were_kept_gets_them_once(cache, monkeypatch):
    import shutil

    from rnnbench.tasks import base

    task = rnnbench.get_task("adding").build(length=12, train_size=16, validation_size=8, test_size=8)
    task.load(seed=0, cache_dir=cache)
    folder = task.cache_path(seed=0, cache_dir=cache)
    shutil.rmtree(folder / "columns")
    assert task.load_columns(seed=0, cache_dir=cache) is None
    writes = []
    monkeypatch.setattr(base, "write_columns", lambda *args: writes.append(args) or write_columns(*args))
    task.ensure_cached(seed=0, cache_dir=cache)
    task.ensure_cached(seed=0, cache_dir=cache)
    assert len(writes) == 1, "written once, then found"
    kept = task.load_columns(seed=0, cache_dir=cache)
    assert kept is not None
    np.testing.assert_array_equal(kept["train"]["target"], columns(task, "train", cache=cache)["target"])
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], "no staging folder left"


def test_columns_that_cannot_be_kept_or_read_leave_the_worker_to_datasets(cache):
    """Text columns are not kept; a damaged or unreadable columns folder reads as none (datasets' files are
    then read); a read-only cache keeps working without them."""
    import datasets

    from rnnbench.tasks.columns import read_columns

    text = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"inputs": ["ab", "c"], "target": [0, 1]})}
    )
    write_columns(cache, text)
    assert not (cache / "columns").exists()
    task = rnnbench.get_task("adding").build(length=12, train_size=16, validation_size=8, test_size=8)
    task.load(seed=0, cache_dir=cache)
    folder = task.cache_path(seed=0, cache_dir=cache)
    (folder / "columns" / "train.target.npy").write_bytes(b"not numpy")
    assert read_columns(folder) is None
    import shutil

    shutil.rmtree(folder / "columns")
    # A write that fails, as in a read-only cache (root writes anywhere: a file where the folder would go).
    (folder / "columns").write_text("in the way")
    task.ensure_cached(seed=0, cache_dir=cache)  # no error: the columns are an aid
    assert read_columns(folder) is None and task.load_columns(seed=0, cache_dir=cache) is None


def test_an_hf_task_is_always_read_with_datasets(csv_files, cache):
    """Its load learns the encoding and the sizes: the worker must run it, columns or not."""
    task = rnnbench.get_task("hf").build(
        path="csv", data_files=f"train={csv_files['train']},test={csv_files['test']}"
    )
    task.load(seed=0, cache_dir=cache)
    assert task.load_columns(seed=0, cache_dir=cache) is None
