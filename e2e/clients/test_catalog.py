"""The Iceberg catalog as users see it: other engines' tables, file pruning, session defaults."""

from __future__ import annotations

import re

from sqe_harness import assert_not_found, rows, run, scalar, unique, wait_for_scalar


def test_table_created_by_another_engine_becomes_visible(server_factory):
    """Two servers share one embedded catalog (the SQLite file and the warehouse): a table
    created through B shows up in A within the metadata cache TTL, without a restart."""
    ttl = {"SQE_CATALOG__METADATA_CACHE_TTL_SECS": "1"}
    a = server_factory(env=ttl)
    b = server_factory(data_dir=a.data_dir, env=ttl)
    t = unique("shared")
    ca, cb = a.connect(), b.connect()
    try:
        assert scalar(ca, f"SELECT count(*) FROM information_schema.tables WHERE table_name = '{t}'") == 0
        run(cb, f"CREATE TABLE {t} (id BIGINT)")
        run(cb, f"INSERT INTO {t} VALUES (1), (2)")
        wait_for_scalar(ca, f"SELECT count(*) FROM {t}", 2, timeout=30, what=f"{t} visible to the other server")
        # new snapshots written by B are read by A too
        run(cb, f"INSERT INTO {t} VALUES (3)")
        wait_for_scalar(ca, f"SELECT count(*) FROM {t}", 3, timeout=30, what="the other server's append visible")
    finally:
        ca.close()
        cb.close()


def _files_scanned(conn, sql: str) -> int:
    plan = "\n".join(str(r[-1]) for r in rows(conn, f"EXPLAIN ANALYZE {sql}"))
    counts = [int(n) for n in re.findall(r"files_scanned=(\d+)", plan)]
    assert counts, f"no files_scanned metric in:\n{plan}"
    return sum(counts)


def test_partition_filter_reads_only_matching_files(conn):
    t = unique("daily")
    run(conn, f"CREATE TABLE {t} (id BIGINT, ts TIMESTAMP) PARTITIONED BY (day(ts))")
    for day in range(1, 9):
        # one INSERT per day: one file per day partition
        run(conn, f"INSERT INTO {t} VALUES ({day}, TIMESTAMP '2024-03-0{day} 12:00:00')")
    assert _files_scanned(conn, f"SELECT count(id) FROM {t}") == 8
    assert _files_scanned(conn, f"SELECT count(id) FROM {t} WHERE ts >= TIMESTAMP '2024-03-07'") == 2
    assert _files_scanned(conn, f"SELECT id FROM {t} WHERE ts = TIMESTAMP '2024-03-03 12:00:00'") == 1
    assert scalar(conn, f"SELECT count(*) FROM {t} WHERE ts >= TIMESTAMP '2024-03-07'") == 2


def test_session_options_set_the_default_schema(server):
    """ADBC's current db_schema goes through Flight SQL session options."""
    s = unique("sess")
    conn = server.connect()
    other = server.connect()
    try:
        run(conn, f"CREATE SCHEMA {s}")
        run(conn, f"CREATE TABLE {s}.t (x INT)")
        run(conn, f"INSERT INTO {s}.t VALUES (7)")
        conn.adbc_current_db_schema = s
        assert conn.adbc_current_db_schema == s
        assert conn.adbc_current_catalog == "iceberg"
        assert scalar(conn, "SELECT x FROM t") == 7
        # another connection keeps its own default
        assert_not_found(other, "SELECT x FROM t", "the session option leaked into another connection")
    finally:
        conn.close()
        other.close()


def test_use_changes_only_this_connection(server):
    s = unique("use")
    a, b = server.connect(), server.connect()
    try:
        run(a, f"CREATE SCHEMA {s}")
        run(a, f"CREATE TABLE {s}.only_here (x INT)")
        run(a, f"USE {s}")
        assert scalar(a, "SELECT count(*) FROM only_here") == 0
        # b still resolves names in `default`
        assert_not_found(b, "SELECT count(*) FROM only_here", "USE leaked into another connection")
    finally:
        a.close()
        b.close()
