#!/usr/bin/env python3
"""TPC-H through SQE (Flight SQL, Iceberg tables) and DuckDB (Parquet), in one invocation.

1. `sqe-server generate-tpch` writes the eight tables as Parquet (cached per scale factor).
2. A fresh sqe-server (own data dir, no sample) ingests them into Iceberg through Flight SQL
   bulk ingest (`adbc_ingest`), i.e. through SQE's own write path.
3. Each of the 22 queries runs once to warm up, then three timed runs, on SQE (ADBC Flight
   SQL, results fetched as Arrow) and on DuckDB over the same Parquet files, with the same
   number of threads. Results are compared row by row.
4. The distributed column (`--no-distributed` skips it): the hybrid server stops, and a
   coordinator with `--workers` sqe-workers starts on the same data dir; the queries run again
   the same way, their rows compared with DuckDB's, their medians set against the hybrid ones.
5. Prints per-query medians, the ratios, totals and geometric means, and writes the table to
   target/bench/ (markdown and JSON). Process logs are in target/bench/logs/.
6. The protocol line: `SELECT * FROM lineitem` fetched whole through Flight SQL (ADBC, Arrow),
   through SQE's Trino protocol (raw HTTP, JSON pages decoded as a client does) and through a
   real Trino 476's TPC-H connector (`tpch.sf<N>.lineitem`, generated on the fly) on this
   machine: rows/s and MB/s (`--protocols-only` runs just this).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import duckdb

from sqe_local import ClusterSpec, LocalCluster, ProcessFailed
from tpch_data import (
    TABLES,
    connect,
    fetch_rows,
    ingest_tables,
    load_queries,
    parquet_tables,
    parse_query_list,
    rows_equal,
    scale_tag,
    timed_statement,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "e2e" / "clients"))


def bench_env(threads: int) -> dict[str, str]:
    """The coordinator settings of every SQE run here (hybrid and distributed alike)."""
    return {
        "SQE_COORDINATOR__DEFAULT_SCHEMA": "tpch",
        "SQE_COORDINATOR__TARGET_PARTITIONS": str(threads),
        "SQE_COORDINATOR__LOG_LEVEL": "warn",
    }


def measure(execute: Callable[[str], list[tuple]], stmts: list[str], runs: int) -> tuple[float, list[tuple]]:
    """One warm-up and `runs` timed runs of the query's SELECT: (median seconds, its rows)."""
    ti = timed_statement(stmts)
    times = []
    rows: list[tuple] = []
    for run in range(runs + 1):
        for i, s in enumerate(stmts):
            if i != ti:
                execute(s)
                continue
            start = time.perf_counter()
            rows = execute(s)
            if run > 0:
                times.append(time.perf_counter() - start)
    return statistics.median(times), rows


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def trino_fetch(base: str, sql: str, headers: dict[str, str]) -> tuple[int, int, float]:
    """Runs `sql` over the Trino protocol to the last page; returns (rows, bytes, seconds)."""
    h = {"X-Trino-User": "bench", **headers}
    start = time.perf_counter()
    req = urllib.request.Request(f"{base}/v1/statement", data=sql.encode(), method="POST", headers=h)
    rows = nbytes = 0
    with _NO_PROXY.open(req, timeout=600) as r:
        body = r.read()
    while True:
        nbytes += len(body)
        page = json.loads(body)
        if "error" in page:
            raise SystemExit(f"Trino protocol query failed: {page['error']['message']}")
        rows += len(page.get("data", ()))
        if "nextUri" not in page:
            break
        with _NO_PROXY.open(urllib.request.Request(page["nextUri"], headers=h), timeout=600) as r:
            body = r.read()
    return rows, nbytes, time.perf_counter() - start


def protocol_line(conn, trino_url: str, scale: float) -> list[dict]:
    """`SELECT * FROM lineitem` fetched whole through each protocol (one warm-up, best of 2)."""
    out = []
    sql = "SELECT * FROM tpch.lineitem"

    def best(f):
        f()
        return min((f() for _ in range(2)), key=lambda r: r[2])

    def flight():
        start = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(sql)
            table = cur.fetch_arrow_table()
        return table.num_rows, table.nbytes, time.perf_counter() - start

    for name, f in [
        ("SQE, Flight SQL (ADBC, Arrow)", flight),
        ("SQE, Trino protocol (JSON)", lambda: trino_fetch(trino_url, sql, {})),
    ]:
        rows, nbytes, secs = best(f)
        out.append({"path": name, "rows": rows, "bytes": nbytes, "seconds": secs})
        print(f"{name}: {rows} rows in {secs:.2f} s", flush=True)
    try:
        from trino_reference import TrinoReference, TrinoStackMissing, require_stack

        require_stack(server=True)
    except (ImportError, TrinoStackMissing) as e:
        print(f"no real Trino for the protocol line ({e}); run `make trino-stack`", flush=True)
        return out
    ref_dir = Path(tempfile.mkdtemp(prefix="sqe-bench-trino-"))
    ref = TrinoReference(ref_dir)
    try:
        ref.start()
        schema = "tiny" if scale == 0.01 else f"sf{scale:g}"
        rows, nbytes, secs = best(lambda: trino_fetch(ref.url, "SELECT * FROM lineitem", {"X-Trino-Catalog": "tpch", "X-Trino-Schema": schema}))
        out.append({"path": f"Trino 476, TPC-H connector (tpch.{schema}, JSON)", "rows": rows, "bytes": nbytes, "seconds": secs})
        print(f"Trino 476: {rows} rows in {secs:.2f} s", flush=True)
    finally:
        ref.stop()
        shutil.rmtree(ref_dir, ignore_errors=True)
    return out


def protocol_table(results: list[dict]) -> list[str]:
    lines = [
        "",
        "## Fetching all of lineitem, per protocol",
        "",
        "| path | rows | seconds | rows/s | MB/s |",
        "|------|-----:|--------:|-------:|-----:|",
    ]
    for r in results:
        lines.append(
            f"| {r['path']} | {r['rows']} | {r['seconds']:.2f} | {r['rows'] / r['seconds']:,.0f} | "
            f"{r['bytes'] / r['seconds'] / 1e6:,.1f} |"
        )
    lines.append("")
    lines.append("MB are Arrow in-memory bytes for Flight SQL and JSON bytes on the wire for the Trino protocol.")
    return lines


def run_distributed(args, data_dir: Path, logs_dir: Path, queries: dict[int, list[str]],
                    selected: list[int], duck_answers: dict[int, list[tuple]]) -> dict:
    """The selected queries on a coordinator + `args.workers` workers over `data_dir` (which the
    hybrid server has left): per query the median seconds and whether the rows match DuckDB's."""
    cluster = LocalCluster(ClusterSpec(
        mode="distributed",
        data_dir=data_dir,
        server_bin=Path(args.sqe_server),
        worker_bin=Path(args.sqe_worker),
        workers=args.workers,
        sample_data=False,
        coordinator_env=bench_env(args.threads),
        worker_env={"SQE_COORDINATOR__LOG_LEVEL": "warn"},
        logs_dir=logs_dir,
    ))
    out: dict = {"workers": args.workers, "queries": {}, "error": None, "peak_rss_mib": {}}
    print(f"distributed: a coordinator and {args.workers} workers on the same data ...", flush=True)
    try:
        cluster.start()
    except ProcessFailed as e:
        out["error"] = f"could not start: {e}"
        print(out["error"], file=sys.stderr)
        return out
    try:
        conn = connect(cluster.flight_sql_uri)
        try:
            for n in selected:
                try:
                    secs, rows = measure(lambda s: fetch_rows(conn, s), queries[n], args.runs)
                    r = {"seconds": secs, "rows": len(rows), "same_rows": rows_equal(rows, duck_answers[n])}
                    print(f"q{n:<2} distributed {secs*1000:8.1f} ms  rows {len(rows):>4}  "
                          f"{'ok' if r['same_rows'] else 'DIFFERENT'}", flush=True)
                except Exception as e:  # noqa: BLE001 - reported per query, the run goes on
                    r = {"seconds": None, "rows": None, "same_rows": False, "error": str(e)}
                    print(f"q{n:<2} distributed FAILED: {e}", flush=True)
                    conn.close()
                    conn = connect(cluster.flight_sql_uri)
                out["queries"][n] = r
            with conn.cursor() as cur:
                cur.execute("SELECT node_id, count(*) AS tasks FROM system.runtime.tasks "
                            "GROUP BY node_id ORDER BY node_id")
                out["tasks_per_node"] = dict(cur.fetchall())
        finally:
            conn.close()
        out["peak_rss_mib"] = cluster.peak_rss_mib()
    finally:
        for line in cluster.stop():
            print(f"distributed: {line}", flush=True)
    return out


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sqe-server", default=str(ROOT / "target/release/sqe-server"))
    ap.add_argument("--sqe-worker", default=None, help="default: sqe-worker beside --sqe-server")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--queries", default="1-22", help="e.g. 1-22 or 1,3,6")
    ap.add_argument("--protocols-only", action="store_true", help="only the protocol line")
    # NO_DISTRIBUTED=1 and FILES_PER_TABLE=n reach these through `make bench` as well
    ap.add_argument("--no-distributed", action="store_true",
                    default=os.environ.get("NO_DISTRIBUTED", "") not in ("", "0"),
                    help="skip the coordinator + workers column (or NO_DISTRIBUTED=1)")
    ap.add_argument("--workers", type=int, default=2, help="workers in the distributed column")
    ap.add_argument("--files-per-table", type=int, default=int(os.environ.get("FILES_PER_TABLE", "1")),
                    help="Iceberg data files per table, default 1 (or FILES_PER_TABLE=n): SQE splits "
                         "scans by file, so a table of one file is read by one task on one node")
    args = ap.parse_args()
    if args.sqe_worker is None:
        args.sqe_worker = str(Path(args.sqe_server).with_name("sqe-worker"))

    selected = parse_query_list(args.queries)
    out_dir = ROOT / "target" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    logs_dir = out_dir / "logs"
    sf_tag = scale_tag(args.scale)
    parquet_dir = parquet_tables(Path(args.sqe_server), args.scale, out_dir)

    work = Path(tempfile.mkdtemp(prefix="sqe-bench-"))
    data_dir = work / "data"
    sqe = LocalCluster(ClusterSpec(
        mode="hybrid",
        data_dir=data_dir,
        server_bin=Path(args.sqe_server),
        sample_data=False,
        coordinator_env=bench_env(args.threads),
        logs_dir=logs_dir,
    ))
    queries = load_queries()
    results = {}
    duck_answers: dict[int, list[tuple]] = {}
    distributed = None
    try:
        sqe.start()
        conn = connect(sqe.flight_sql_uri)
        try:
            print("loading into Iceberg through Flight SQL bulk ingest ...", flush=True)
            t0 = time.perf_counter()
            total_rows = ingest_tables(conn, parquet_dir, files_per_table=args.files_per_table)
            load_s = time.perf_counter() - t0
            print(f"loaded {total_rows} rows in {load_s:.1f} s", flush=True)

            protocols = protocol_line(conn, sqe.trino_url, args.scale)
            if args.protocols_only:
                selected = []

            duck = duckdb.connect()
            duck.execute(f"SET threads TO {args.threads}")
            for t in TABLES:
                duck.execute(
                    f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{parquet_dir / (t + '.parquet')}')"
                )

            for n in selected:
                sqe_s, sqe_rows = measure(lambda s: fetch_rows(conn, s), queries[n], args.runs)
                duck_s, duck_rows = measure(lambda s: duck.execute(s).fetchall(), queries[n], args.runs)
                duck_answers[n] = duck_rows
                same = rows_equal(sqe_rows, duck_rows)
                results[n] = {"sqe_s": sqe_s, "duckdb_s": duck_s, "rows": len(sqe_rows), "same_rows": same}
                print(
                    f"q{n:<2} sqe {sqe_s*1000:8.1f} ms  duckdb {duck_s*1000:8.1f} ms  "
                    f"ratio {sqe_s/duck_s:5.2f}  rows {len(sqe_rows):>4}  {'ok' if same else 'DIFFERENT'}",
                    flush=True,
                )
        finally:
            conn.close()
        peak_rss = sqe.peak_rss_mib()["sqe-server"]
        sqe.stop()
        if selected and not args.no_distributed:
            distributed = run_distributed(args, data_dir, logs_dir, queries, selected, duck_answers)
    finally:
        sqe.stop()
        shutil.rmtree(work, ignore_errors=True)

    if not results:
        report = "\n".join(protocol_table(protocols)) + "\n"
        print(report)
        (out_dir / f"protocols-{sf_tag}.md").write_text(report)
        return 0

    sqe_total = sum(r["sqe_s"] for r in results.values())
    duck_total = sum(r["duckdb_s"] for r in results.values())
    sqe_gm = geomean([r["sqe_s"] for r in results.values()])
    duck_gm = geomean([r["duckdb_s"] for r in results.values()])
    mismatches = [f"q{n}" for n, r in results.items() if not r["same_rows"]]

    lines = [
        f"# TPC-H {sf_tag}: SQE vs DuckDB {duckdb.__version__}",
        "",
        f"{dt.datetime.now().isoformat(timespec='seconds')} · {platform.node()} · "
        f"{os.cpu_count()} cores · {args.threads} threads · median of {args.runs} runs after a warm-up",
        f"SQE: Flight SQL (ADBC) over Iceberg tables ({args.files_per_table} data file(s) per table) "
        f"loaded by bulk ingest in {load_s:.1f} s; "
        f"peak RSS {peak_rss:.0f} MiB. DuckDB: Parquet files.",
    ]
    dist = distributed["queries"] if distributed else {}
    if distributed:
        rss = ", ".join(f"{name} {mib:.0f}" for name, mib in distributed["peak_rss_mib"].items())
        lines.append(
            f"Distributed: a coordinator and {distributed['workers']} workers on the same Iceberg "
            f"data (sqe-server, mode = distributed); peak RSS MiB: {rss or 'n/a'}."
        )
        if distributed["error"]:
            lines.append(f"Distributed run failed: {distributed['error'].splitlines()[0]}")
        mismatches += [f"q{n} (distributed)" for n in selected if not dist.get(n, {}).get("same_rows")]
    lines.append("")
    if distributed:
        lines += [
            "| query | SQE ms | DuckDB ms | SQE/DuckDB | distributed ms | distributed/SQE | rows | same rows | distributed same rows |",
            "|------:|-------:|----------:|-----------:|---------------:|----------------:|-----:|:---------:|:---------------------:|",
        ]
    else:
        lines += [
            "| query | SQE ms | DuckDB ms | SQE/DuckDB | rows | same rows |",
            "|------:|-------:|----------:|-----------:|-----:|:---------:|",
        ]
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    for n, r in results.items():
        row = f"| q{n} | {r['sqe_s']*1000:.1f} | {r['duckdb_s']*1000:.1f} | {r['sqe_s']/r['duckdb_s']:.2f} | "
        if distributed:
            d = dist.get(n, {})
            if d.get("seconds"):
                row += f"{d['seconds']*1000:.1f} | {d['seconds']/r['sqe_s']:.2f} | "
            else:
                row += "failed | | "
            row += f"{r['rows']} | {yes(r['same_rows'])} | {yes(d.get('same_rows'))} |"
        else:
            row += f"{r['rows']} | {yes(r['same_rows'])} |"
        lines.append(row)
    dist_ok = [n for n in results if dist.get(n, {}).get("seconds")]
    if distributed and dist_ok:
        dist_total = sum(dist[n]["seconds"] for n in dist_ok)
        dist_gm = geomean([dist[n]["seconds"] for n in dist_ok])
        ratio_gm = geomean([dist[n]["seconds"] / results[n]["sqe_s"] for n in dist_ok])
        partial = "" if len(dist_ok) == len(results) else f" ({len(dist_ok)} of {len(results)} queries)"
        lines += [
            f"| **total** | {sqe_total*1000:.0f} | {duck_total*1000:.0f} | {sqe_total/duck_total:.2f} | "
            f"{dist_total*1000:.0f}{partial} | {dist_total/sum(results[n]['sqe_s'] for n in dist_ok):.2f} | | | |",
            f"| **geomean** | {sqe_gm*1000:.1f} | {duck_gm*1000:.1f} | {sqe_gm/duck_gm:.2f} | "
            f"{dist_gm*1000:.1f}{partial} | {ratio_gm:.2f} | | | |",
        ]
        distributed.update(total_s=dist_total, geomean_s=dist_gm, geomean_ratio_to_hybrid=ratio_gm)
        tasks = distributed.get("tasks_per_node", {})
        if tasks:
            total_tasks = sum(tasks.values())
            lines += ["", "Tasks per node in the distributed run (system.runtime.tasks): " + ", ".join(
                f"{node} {count} ({100 * count / total_tasks:.0f} %)" for node, count in tasks.items())]
            if not any(node.startswith("worker-") for node in tasks):
                lines += ["", f"**No task ran on a worker**: with {args.files_per_table} data file(s) "
                          "per table every scan is one task, which the coordinator keeps; "
                          "`FILES_PER_TABLE=4 make bench` (--files-per-table 4) splits the tables."]
    else:
        lines += [
            f"| **total** | {sqe_total*1000:.0f} | {duck_total*1000:.0f} | {sqe_total/duck_total:.2f} | | |"
            + (" | | |" if distributed else ""),
            f"| **geomean** | {sqe_gm*1000:.1f} | {duck_gm*1000:.1f} | {sqe_gm/duck_gm:.2f} | | |"
            + (" | | |" if distributed else ""),
        ]
    lines += protocol_table(protocols)
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    (out_dir / f"tpch-{sf_tag}.md").write_text(report)
    (out_dir / f"tpch-{sf_tag}.json").write_text(
        json.dumps(
            {
                "scale": args.scale,
                "threads": args.threads,
                "files_per_table": args.files_per_table,
                "load_seconds": load_s,
                "peak_rss_mib": peak_rss,
                "queries": results,
                "sqe_total_s": sqe_total,
                "duckdb_total_s": duck_total,
                "sqe_geomean_s": sqe_gm,
                "duckdb_geomean_s": duck_gm,
                "distributed": distributed,
                "protocols": protocols,
            },
            indent=2,
        )
    )
    if mismatches:
        print(f"results differ or failed for: {', '.join(mismatches)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
