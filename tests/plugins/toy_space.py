"""Test plugin: registers a search space through register_search_spaces."""

import rnnbench


def tiny(trial):
    return {"depth": trial.suggest_int("depth", 1, 2), "width": trial.suggest_int("width", 8, 16)}


@rnnbench.hookimpl
def register_search_spaces(register):
    register("tiny", tiny, description="A two-parameter space", reference="test plugin")
