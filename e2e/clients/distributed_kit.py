"""Tables and queries for distributed runs, shared by the client suite (test_distributed.py)
and the real-pod suite (e2e/pods): a table of several data files, so a scan splits across
workers, and an aggregate over it whose run time is calibrated on the machine."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from sqe_harness import rows, run, unique

#: Rows per INSERT of the tables behind the long queries (four files).
LONG_TABLE_ROWS_PER_FILE = 200_000


@dataclass(frozen=True)
class MultiFileTable:
    """A table written by `files` INSERTs of `rows_per_file` rows each, so it has at least that
    many data files and the planner splits its scan across the workers: k = 1..N,
    v = k * 37 % 1000."""

    name: str
    files: int
    rows_per_file: int

    @classmethod
    def create(cls, conn, files: int = 4, rows_per_file: int = 5000) -> MultiFileTable:
        schema = unique("dist")
        run(conn, f"CREATE SCHEMA iceberg.{schema}")
        table = cls(f"iceberg.{schema}.facts", files, rows_per_file)
        run(conn, f"CREATE TABLE {table.name} (k BIGINT, v BIGINT)")
        for i in range(files):
            lo, hi = i * rows_per_file + 1, (i + 1) * rows_per_file
            run(
                conn,
                f"INSERT INTO {table.name} SELECT value AS k, value * 37 % 1000 AS v "
                f"FROM generate_series({lo}, {hi})",
            )
        return table

    @property
    def row_count(self) -> int:
        return self.files * self.rows_per_file

    def aggregate_sql(self, marker: str = "n", cost: int = 0) -> str:
        """`SELECT k % 7, count(*), sum(v) … GROUP BY 1 ORDER BY 1`; `marker` names the count
        column, so a unique one finds the query in system.runtime.queries. With `cost`, every
        row first hashes `cost` copies of its value: a filter that keeps every row and that the
        planner cannot see through, so the scan stages (on the workers) take long."""
        where = f" WHERE length(encode(sha256(repeat(CAST(v AS VARCHAR), {cost})), 'hex')) = 64" if cost else ""
        return f"SELECT k % 7 AS g, count(*) AS {marker}, sum(v) AS s FROM {self.name}{where} GROUP BY 1 ORDER BY 1"

    def expected_aggregate(self) -> list[tuple[int, int, int]]:
        return _expected_aggregate(self.row_count)


@functools.cache
def _expected_aggregate(row_count: int) -> list[tuple[int, int, int]]:
    """(k % 7, count, sum(v)) over k = 1..row_count, v = k * 37 % 1000, computed in Python."""
    groups: dict[int, list[int]] = {}
    for k in range(1, row_count + 1):
        g = groups.setdefault(k % 7, [0, 0])
        g[0] += 1
        g[1] += k * 37 % 1000
    return [(g, n, s) for g, (n, s) in sorted(groups.items())]


class SlowAggregate:
    """The multi-file aggregate with a `cost` calibrated on this machine so that it runs about
    `target_seconds` on the cluster it was measured on (time grows linearly with the cost)."""

    def __init__(self, table: MultiFileTable, cost: int) -> None:
        self.table = table
        self.cost = max(1, int(cost))

    def sql(self, marker: str) -> str:
        return self.table.aggregate_sql(marker, cost=self.cost)

    def run(self, conn) -> float:
        t0 = time.monotonic()
        got = rows(conn, self.sql(unique("n")))
        elapsed = time.monotonic() - t0
        assert got == self.table.expected_aggregate(), f"cost {self.cost}: {got}"
        return elapsed

    @classmethod
    def calibrated(cls, conn, table: MultiFileTable, target_seconds: float) -> SlowAggregate:
        """Measures the fixed part (cost 1), then raises the cost fourfold until a run takes a
        second more than that, and fits time = fixed + c * cost."""
        fixed = cls(table, 1).run(conn)
        cost = 16
        while True:
            elapsed = cls(table, cost).run(conn)
            if elapsed >= fixed + 1.0 or cost >= 1 << 16:
                break
            cost *= 4
        per_cost = max(elapsed - fixed, 0.05) / (cost - 1)
        return cls(table, max(target_seconds - fixed, 0.5) / per_cost)
