"""The command line: listings, check-cell verdicts and exit codes, help text everywhere."""

from __future__ import annotations

import json
import types

import pytest
import typer
from typer.testing import CliRunner

import rnnbench
from rnnbench.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_plugins_json_lists_the_builtin_cells():
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    cells = sorted(n for p in json.loads(result.stdout) for n in p["registered"].get("cell", []))
    odyssey = ["cifg", "fgr", "nfg", "nig", "niaf", "noaf", "nog", "np"]
    assert cells == sorted(["gru", "lstm", "peephole", "rnn", *odyssey])


def test_plugins_table():
    result = invoke("plugins")
    assert result.exit_code == 0
    for name in ("rnnbench.plugins.lstm", "rnnbench.plugins.peephole", "cell: gru", rnnbench.__version__):
        assert name in result.stdout


def test_cells_shows_description_reference_and_plugin():
    result = invoke("cells", "--json")
    cells = {c["name"]: c for c in json.loads(result.stdout)}
    odyssey = {"nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr"}
    assert set(cells) == {"lstm", "gru", "rnn", "peephole", *odyssey}
    assert cells["peephole"]["reference"].startswith("Gers & Schmidhuber 2000")
    assert all("Search Space Odyssey" in cells[n]["reference"] for n in odyssey)
    assert cells["cifg"]["description"].endswith("f = 1 - i, no forget-gate parameters")
    assert cells["gru"]["plugin"] == "rnnbench.plugins.gru"
    table = invoke("cells").stdout
    assert "Minimal" not in table and "Cho et al. 2014" in table
    assert "c[t-1]" in table, "rich markup must not eat the brackets in descriptions"


def test_check_cell_passes_for_peephole():
    result = invoke("check-cell", "peephole")
    assert result.exit_code == 0, result.output
    assert "cell 'peephole' passed" in result.stdout
    assert "gradient to every parameter" in result.stdout


def test_check_cell_json():
    result = invoke("check-cell", "rnn", "--json", "--hidden-size", "4", "--num-layers", "1")
    report = json.loads(result.stdout)
    assert report["passed"] is True and report["cell"] == "rnn"
    assert {c["check"] for c in report["checks"]} >= {"output shape", "device move"}


def _broken_build(input_size, hidden_size, num_layers, dropout):
    import torch

    class LastStepOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(input_size, hidden_size, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0][:, -1]

    return LastStepOnly()


def test_check_cell_fails_with_exit_code_1_and_reasons(use_plugin):
    plugin = types.SimpleNamespace(
        register_cells=rnnbench.hookimpl(
            lambda register: register("laststep", _broken_build, description="broken", reference="none")
        )
    )
    use_plugin(plugin, "broken-plugin")
    result = invoke("check-cell", "laststep")
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "expected (1, 1, 5)" in result.stdout
    assert "cell 'laststep' failed" in result.stdout


def test_check_cell_unknown_name_exits_2_listing_choices():
    result = invoke("check-cell", "lstn")
    assert result.exit_code == 2
    assert (
        "unknown cell 'lstn'; valid cells: cifg, fgr, gru, lstm, nfg, niaf, nig, noaf, nog, np, peephole, rnn"
        in result.stderr
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and rnnbench.__version__ in result.stdout


def _commands() -> list[tuple[str, object]]:
    group = typer.main.get_command(app)
    return [("rnnbench", group), *group.commands.items()]


@pytest.mark.parametrize(("name", "command"), _commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_and_option_has_help(name, command):
    assert (command.help or "").strip(), f"command {name} has no help text"
    for param in command.params:
        if param.name == "help":
            continue
        assert (getattr(param, "help", None) or "").strip(), f"{name}: {param.name} has no help text"
    result = invoke(*([] if name == "rnnbench" else [name]), "--help")
    assert result.exit_code == 0


def test_tasks_lists_builtins_with_defaults():
    rows = {r["name"]: r for r in json.loads(invoke("tasks", "--json").stdout)}
    assert set(rows) >= {"adding", "copy", "temporal_order", "digits", "hf"}
    assert rows["adding"]["default_length"] == 100 and rows["adding"]["chance"] == pytest.approx(0.0784)
    assert rows["copy"]["head"] == "sequence" and rows["copy"]["encoding"] == "one-hot"
    assert rows["digits"]["default_sizes"] == {"train": 1297, "validation": 250, "test": 250}
    assert rows["hf"]["chance"] is None
    table = invoke("tasks").stdout
    assert "Arjovsky" in table and "temporal_order" in table


@pytest.mark.parametrize("command", [["ui"], ["leaderboard", "--no-plots"], ["export", "--out", "x.parquet"]])
def test_a_garbled_store_is_one_line_naming_it(tmp_path, command):
    """Random bytes where mlflow.db should be: one line naming the store, never SQLAlchemy's pages."""
    store = tmp_path / "mlflow.db"
    store.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    result = CliRunner().invoke(app, [*command, "--tracking-uri", f"sqlite:///{store}"])
    assert result.exit_code == 2, result.output
    said = result.stderr.strip()
    assert "mlflow.db: the store cannot be read (" in " ".join(said.split()) and "Traceback" not in said
    assert len(said.splitlines()) <= 3, said


def test_every_sweep_flag_named_as_a_setting_reaches_the_settings(monkeypatch):
    """The sweep command hands its flags on by name (no ``locals()``): each parameter that is a
    SweepSettings field arrives with the value given on the command line."""
    import inspect
    import typing

    from rnnbench.cli.sweep import sweep_command
    from rnnbench.sweep.settings import SweepSettings

    seen = {}

    def capture(sweep_file, flags, option, resume):
        seen.update(flags)
        raise rnnbench.RnnbenchError("captured")

    monkeypatch.setattr("rnnbench.sweep.resolve_settings", capture)
    names = [
        p for p in inspect.signature(sweep_command).parameters if p in SweepSettings.__dataclass_fields__
    ]
    params = {p.name: p for p in typer.main.get_command(app).commands["sweep"].params}
    hints = typing.get_type_hints(sweep_command, include_extras=True)
    args = []
    for name in names:
        option = params[name]
        flag = next(o for o in option.opts if o.startswith("--"))
        if option.is_flag:
            args.append(flag)
        else:
            numeric = any(k in str(hints[name]) for k in ("int", "float"))
            args += [flag, "7" if numeric else "x1"]
    result = runner.invoke(app, ["sweep", *args])
    assert "captured" in result.output, result.output
    assert set(names) <= set(seen) and all(seen[n] not in (None, False) for n in names), seen


def test_an_errors_chain_and_its_root_cause():
    """Followed through ``raise ... from`` and through an error raised while handling another, but not
    past ``from None``; the innermost error is the root cause, named on one line."""
    from rnnbench.errors import error_chain, root_cause

    def chained() -> BaseException:
        try:
            try:
                raise OSError("database or disk is full\nsecond line")
            except OSError as disk:
                raise RuntimeError("write failed") from disk
        except RuntimeError:
            try:
                raise ValueError("while handling")
            except ValueError as exc:
                return exc

    exc = chained()
    assert [type(e) for e in error_chain(exc)] == [ValueError, RuntimeError, OSError]
    assert root_cause(exc) == "OSError: database or disk is full"
    try:
        try:
            raise OSError("hidden")
        except OSError:
            raise KeyError("shown") from None
    except KeyError as cut:
        assert error_chain(cut) == [cut] and root_cause(cut) == "KeyError: 'shown'"
