"""The suite's own order (tests/conftest.py): long modules first, so both test processes end together."""

from __future__ import annotations

from dataclasses import dataclass

from tests.conftest import slow_modules_first


@dataclass
class Item:
    """What slow_modules_first reads of a pytest item: its node id and whether it is marked slow."""

    nodeid: str
    slow: bool = False

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name == "slow" and self.slow else None


def test_modules_with_more_slow_tests_come_first_each_kept_whole_and_in_order() -> None:
    items = [
        Item("tests/test_a.py::quick"),
        Item("tests/test_b.py::one", slow=True),
        Item("tests/test_b.py::two"),
        Item("tests/test_c.py::one", slow=True),
        Item("tests/test_c.py::two", slow=True),
        Item("tests/test_c.py::three@group"),
        Item("tests/test_d.py::quick"),
    ]
    slow_modules_first(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == [
        "tests/test_c.py::one",
        "tests/test_c.py::two",
        "tests/test_c.py::three@group",
        "tests/test_b.py::one",
        "tests/test_b.py::two",
        "tests/test_a.py::quick",
        "tests/test_d.py::quick",
    ]
