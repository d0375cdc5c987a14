"""Test plugin: registers a task through register_tasks."""

import rnnbench


def build_parity(length=8):
    return {"name": "parity", "length": length}


@rnnbench.hookimpl
def register_tasks(register):
    register("parity", build_parity, description="Parity of a bit string", reference="test plugin")
