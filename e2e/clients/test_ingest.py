"""Bulk ingestion with `cursor.adbc_ingest` (Flight SQL CommandStatementIngest)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import adbc_driver_manager
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sqe_harness import assert_adbc_error, rows, run, scalar, unique

Status = adbc_driver_manager.AdbcStatusCode


def _people(ids, names):
    return pa.table({"id": pa.array(ids, pa.int64()), "name": pa.array(names, pa.string())})


def test_create_then_append(conn):
    t = unique("t_ingest")
    with conn.cursor() as cur:
        assert cur.adbc_ingest(t, _people([1, 2, 3], ["a", "b", "c"]), mode="create") == 3
        assert cur.adbc_ingest(t, _people([4, 5], ["d", "e"]), mode="append") == 2
    assert rows(conn, f"SELECT id, name FROM {t} ORDER BY id") == [
        (1, "a"),
        (2, "b"),
        (3, "c"),
        (4, "d"),
        (5, "e"),
    ]
    # the table is an ordinary Iceberg table: SQL DML works on it too
    run(conn, f"INSERT INTO {t} VALUES (6, 'f')")
    assert scalar(conn, f"SELECT count(*) FROM iceberg.default.{t}") == 6


def test_create_on_existing_table_fails(conn):
    t = unique("t_ingest")
    with conn.cursor() as cur:
        cur.adbc_ingest(t, _people([1], ["a"]), mode="create")
        with pytest.raises(adbc_driver_manager.Error) as e:
            cur.adbc_ingest(t, _people([2], ["b"]), mode="create")
        assert_adbc_error(e.value, Status.ALREADY_EXISTS)
    # nothing of the failed call was written
    assert rows(conn, f"SELECT id FROM {t}") == [(1,)]


def test_append_to_missing_table_fails(conn):
    t = unique("t_missing")
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as e:
            cur.adbc_ingest(t, _people([1], ["a"]), mode="append")
        assert_adbc_error(e.value, Status.NOT_FOUND)


def test_create_append_mode(conn):
    t = unique("t_ca")
    with conn.cursor() as cur:
        cur.adbc_ingest(t, _people([1], ["a"]), mode="create_append")
        cur.adbc_ingest(t, _people([2], ["b"]), mode="create_append")
    assert scalar(conn, f"SELECT count(*) FROM {t}") == 2


def test_ingest_into_named_schema(conn):
    s, t = unique("ing"), unique("t")
    run(conn, f"CREATE SCHEMA iceberg.{s}")
    with conn.cursor() as cur:
        cur.adbc_ingest(t, _people([1, 2], ["x", "y"]), mode="create", db_schema_name=s)
    assert rows(conn, f"SELECT name FROM iceberg.{s}.{t} ORDER BY id") == [("x",), ("y",)]


def test_many_batches(conn):
    t = unique("t_big")
    n, batch_rows = 100_000, 8_192
    schema = pa.schema([("id", pa.int64()), ("v", pa.float64())])

    def batches():
        for start in range(0, n, batch_rows):
            ids = pa.array(range(start, min(start + batch_rows, n)), pa.int64())
            yield pa.record_batch([ids, pc.multiply(ids.cast(pa.float64()), 0.5)], schema=schema)

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    with conn.cursor() as cur:
        assert cur.adbc_ingest(t, reader, mode="create") == n
    assert rows(conn, f"SELECT count(*), min(id), max(id), sum(v) FROM {t}") == [(n, 0, n - 1, 0.5 * (n - 1) * n / 2)]


def test_arrow_types_round_trip(conn):
    t = unique("t_types")
    data = pa.table(
        {
            "b": pa.array([True, False, None], pa.bool_()),
            "i": pa.array([1, -2, None], pa.int32()),
            "l": pa.array([2**40, 0, None], pa.int64()),
            "f": pa.array([1.5, -0.25, None], pa.float32()),
            "d": pa.array([2.5, 1e300, None], pa.float64()),
            "m": pa.array([Decimal("1.23"), Decimal("-4.50"), None], pa.decimal128(9, 2)),
            "s": pa.array(["x", "ünïcode", None], pa.string()),
            "day": pa.array([dt.date(2020, 2, 29), dt.date(1970, 1, 1), None], pa.date32()),
            "ts": pa.array(
                [dt.datetime(2021, 5, 6, 7, 8, 9, 123456), dt.datetime(1999, 12, 31), None], pa.timestamp("us")
            ),
            "tstz": pa.array(
                [dt.datetime(2021, 5, 6, 7, 8, 9, tzinfo=dt.UTC), None, None], pa.timestamp("us", tz="UTC")
            ),
            "bin": pa.array([b"\x00\x01", b"", None], pa.binary()),
        }
    )
    with conn.cursor() as cur:
        cur.adbc_ingest(t, data, mode="create")
        cur.execute(f"SELECT b, i, l, f, d, m, s, day, ts, tstz, bin FROM {t} ORDER BY i NULLS LAST")
        got = cur.fetch_arrow_table()
    expected = data.take([1, 0, 2]).to_pylist()  # ORDER BY i: -2, 1, NULL
    assert got.to_pylist() == expected
