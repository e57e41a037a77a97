"""pytest plugin: the real Trino reference server (see trino_reference.py).

Loaded from conftest.py with `pytest_plugins = ["trino_fixtures"]`.

- `trino_reference`  one per session: Trino 476, catalog `tpch` (TPC-H, standard column names),
                     on a free 127.0.0.1 port. A missing stack is a failure naming
                     `make trino-stack`, never a skip.
- `trino_stack`      the cache dir of the stack (jars for the Java client tests); fails the same
                     way when it is missing.

The reference server is a `LoggedProcess`: when a test fails while it runs, conftest's report
hook attaches the tail of its log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trino_reference import TrinoReference, TrinoStackMissing, require_stack


def _require(server: bool) -> Path:
    """The stack dir, or a test failure (never a skip) that names `make trino-stack`."""
    try:
        return require_stack(server=server)
    except TrinoStackMissing as e:
        message = str(e)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def trino_stack() -> Path:
    return _require(server=False)


@pytest.fixture(scope="session")
def trino_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrinoReference]:
    _require(server=True)
    ref = TrinoReference(tmp_path_factory.mktemp("trino-reference"))
    try:
        ref.start()
        yield ref
    finally:
        ref.stop()
