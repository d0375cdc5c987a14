"""Registration rules: valid names, metadata, callables, duplicates and unknown look-ups."""

from __future__ import annotations

import pytest

import rnnbench
from rnnbench.core.registry import CellRegistry, SearchSpaceRegistry, TaskRegistry
from rnnbench.errors import (
    CellContractError,
    DuplicateNameError,
    InvalidRegistrationError,
    UnknownCellError,
    UnknownSearchSpaceError,
    UnknownTaskError,
)


def build(input_size, hidden_size, num_layers, dropout):
    import torch

    return torch.nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)


def register_as(registry, plugin, *args, **kwargs):
    with registry.registering_for(plugin, f"{plugin!r} (file /tmp/{plugin}.py)"):
        registry(*args, **kwargs)


@pytest.mark.parametrize("name", ["", "LSTM", "my cell", "1cell", "a,b", None, 3, "x" * 65])
def test_invalid_name_is_rejected_naming_plugin_and_rule(name):
    registry = CellRegistry()
    with pytest.raises(InvalidRegistrationError) as info:
        register_as(registry, "badplug", name, build, description="d", reference="r")
    message = str(info.value)
    assert "badplug" in message and repr(name) in message and "must match" in message


def test_not_callable_is_rejected():
    with pytest.raises(InvalidRegistrationError, match=r"'badplug'.*'cellx'.*not callable"):
        register_as(CellRegistry(), "badplug", "cellx", "build_me", description="d", reference="r")


@pytest.mark.parametrize("field", ["description", "reference"])
@pytest.mark.parametrize("value", ["", "   ", None])
def test_missing_metadata_is_rejected(field, value):
    metadata = {"description": "d", "reference": "r", field: value}
    with pytest.raises(InvalidRegistrationError, match=rf"'badplug'.*'cellx' without a {field}"):
        register_as(CellRegistry(), "badplug", "cellx", build, **metadata)


def test_metadata_is_keyword_only():
    with pytest.raises(TypeError):
        CellRegistry()("cellx", build, "description", "reference")


def test_cell_build_with_wrong_signature_is_rejected():
    def build_two(input_size, hidden_size):
        raise AssertionError("never called")

    with pytest.raises(InvalidRegistrationError, match=r"'badplug'.*'cellx'.*build_two.*num_layers"):
        register_as(CellRegistry(), "badplug", "cellx", build_two, description="d", reference="r")


def test_search_space_must_take_a_trial():
    def no_args():
        return {}

    with pytest.raises(InvalidRegistrationError, match="cannot be called as \\(trial\\)"):
        register_as(SearchSpaceRegistry(), "badplug", "space", no_args, description="d", reference="r")


def test_duplicate_name_names_both_plugins():
    registry = CellRegistry()
    register_as(registry, "first", "cellx", build, description="d", reference="r")
    with pytest.raises(DuplicateNameError) as info:
        register_as(registry, "second", "cellx", build, description="d", reference="r")
    assert "'first'" in str(info.value) and "'second'" in str(info.value)
    assert (info.value.first, info.value.second) == (
        "'first' (file /tmp/first.py)",
        "'second' (file /tmp/second.py)",
    )
    assert registry.get("cellx").plugin == "first", "the first registration is kept, not overwritten"


@pytest.mark.parametrize(
    ("registry_type", "error"),
    [
        (CellRegistry, UnknownCellError),
        (TaskRegistry, UnknownTaskError),
        (SearchSpaceRegistry, UnknownSearchSpaceError),
    ],
)
def test_unknown_name_lists_valid_names(registry_type, error):
    registry = registry_type()
    function = build if registry_type is CellRegistry else (lambda *a, **k: None)
    for name in ("beta", "alpha"):
        registry(name, function, description="d", reference="r")
    with pytest.raises(error) as info:
        registry.get("gamma")
    assert str(info.value) == f"unknown {registry.kind} 'gamma'; valid {registry.kind}s: alpha, beta"
    assert isinstance(info.value, LookupError)


def test_public_lookups_list_builtins():
    with pytest.raises(
        UnknownCellError,
        match="valid cells: cifg, fgr, gru, lstm, nfg, niaf, nig, noaf, nog, np, peephole, rnn",
    ):
        rnnbench.get_cell("lstn")
    with pytest.raises(UnknownTaskError, match="'nope'"):
        rnnbench.get_task("nope")
    with pytest.raises(UnknownSearchSpaceError, match="'nope'"):
        rnnbench.get_search_space("nope")


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"input_size": 0}, "input_size"),
        ({"hidden_size": -3}, "hidden_size"),
        ({"num_layers": 1.5}, "num_layers"),
        ({"hidden_size": True}, "hidden_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": float("nan")}, "dropout"),
    ],
)
def test_build_rejects_bad_sizes(kwargs, culprit):
    args = {"input_size": 2, "hidden_size": 3, "num_layers": 1, "dropout": 0.0, **kwargs}
    with pytest.raises(CellContractError, match=rf"cell 'gru': {culprit} must be"):
        rnnbench.get_cell("gru").build(**args)


def test_build_that_returns_no_module_names_cell_and_plugin():
    registry = CellRegistry()
    register_as(
        registry,
        "badplug",
        "cellx",
        lambda input_size, hidden_size, num_layers, dropout: 42,
        description="d",
        reference="r",
    )
    with pytest.raises(CellContractError, match="cell 'cellx' from plugin badplug returned int"):
        registry.get("cellx").build(2, 3)
