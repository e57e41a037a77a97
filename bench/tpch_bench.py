#!/usr/bin/env python3
"""TPC-H through SQE (Flight SQL, Iceberg tables) and DuckDB (Parquet), in one invocation.

1. `sqe-server generate-tpch` writes the eight tables as Parquet (cached per scale factor).
2. A fresh sqe-server (own data dir, no sample) ingests them into Iceberg through Flight SQL
   bulk ingest (`adbc_ingest`), i.e. through SQE's own write path.
3. Each of the 22 queries runs once to warm up, then three timed runs, on SQE (ADBC Flight
   SQL, results fetched as Arrow) and on DuckDB over the same Parquet files, with the same
   number of threads. Results are compared row by row.
4. Prints per-query medians, the SQE/DuckDB ratio, totals and geometric means, and writes the
   table to target/bench/ (markdown and JSON).
5. The protocol line: `SELECT * FROM lineitem` fetched whole through Flight SQL (ADBC, Arrow),
   through SQE's Trino protocol (raw HTTP, JSON pages decoded as a client does) and through a
   real Trino 476's TPC-H connector (`tpch.sf<N>.lineitem`, generated on the fly) on this
   machine: rows/s and MB/s (`--protocols-only` runs just this).
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight_sql
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "e2e" / "clients"))
QUERIES = ROOT / "bench" / "tpch"
TABLES = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_statements(text: str) -> list[str]:
    # comments may contain `;` (q11's fraction note): drop them before splitting
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"--[^\n]*", "", text)
    return [s.strip() for s in text.split(";") if s.strip()]


def load_queries() -> dict[int, list[str]]:
    out = {}
    for n in range(1, 23):
        out[n] = split_statements((QUERIES / f"q{n}.sql").read_text())
    return out


def timed_statement(stmts: list[str]) -> int:
    """Index of the statement to time: the SELECT (q15 wraps it in CREATE/DROP VIEW)."""
    for i, s in enumerate(stmts):
        if re.match(r"^\s*select", s, re.IGNORECASE):
            return i
    return len(stmts) - 1


def normalize(value):
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, decimal.Decimal):
        return round(float(value), 2)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def rows_equal(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        if len(ra) != len(rb):
            return False
        for x, y in zip(ra, rb):
            x, y = normalize(x), normalize(y)
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-6, abs_tol=0.011):
                    return False
            elif x != y:
                return False
    return True


class Sqe:
    def __init__(self, binary: Path, data_dir: Path, threads: int):
        self.port = free_port()
        self.health = free_port()
        self.trino_port = free_port()
        env = dict(os.environ)
        env.update(
            SQE_COORDINATOR__FLIGHT_SQL_ADDR=f"127.0.0.1:{self.port}",
            SQE_COORDINATOR__TRINO_HTTP_ADDR=f"127.0.0.1:{self.trino_port}",
            SQE_COORDINATOR__HEALTH_ADDR=f"127.0.0.1:{self.health}",
            SQE_METRICS__ADDR=f"127.0.0.1:{free_port()}",
            SQE_COORDINATOR__SAMPLE_DATA="false",
            SQE_COORDINATOR__DEFAULT_SCHEMA="tpch",
            SQE_COORDINATOR__TARGET_PARTITIONS=str(threads),
            SQE_COORDINATOR__LOG_LEVEL="warn",
        )
        self.log = open(data_dir.parent / "sqe-server.log", "w")
        self.proc = subprocess.Popen(
            [str(binary), "--data-dir", str(data_dir)], env=env, stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"sqe-server exited early; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("sqe-server did not become ready in 120 s")
        self.conn = flight_sql.connect(f"grpc://127.0.0.1:{self.port}")

    def run(self, sql: str):
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table()

    def stop(self):
        self.conn.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


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


def protocol_line(sqe: "Sqe", scale: float) -> list[dict]:
    """`SELECT * FROM lineitem` fetched whole through each protocol (one warm-up, best of 2)."""
    out = []
    sql = "SELECT * FROM tpch.lineitem"

    def best(f):
        f()
        return min((f() for _ in range(2)), key=lambda r: r[2])

    def flight():
        start = time.perf_counter()
        table = sqe.run(sql)
        return table.num_rows, table.nbytes, time.perf_counter() - start

    for name, f in [
        ("SQE, Flight SQL (ADBC, Arrow)", flight),
        ("SQE, Trino protocol (JSON)", lambda: trino_fetch(f"http://127.0.0.1:{sqe.trino_port}", sql, {})),
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


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sqe-server", default=str(ROOT / "target/release/sqe-server"))
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--queries", default="1-22", help="e.g. 1-22 or 1,3,6")
    ap.add_argument("--protocols-only", action="store_true", help="only the protocol line")
    args = ap.parse_args()

    selected: list[int] = []
    for part in args.queries.split(","):
        if "-" in part:
            a, b = part.split("-")
            selected.extend(range(int(a), int(b) + 1))
        else:
            selected.append(int(part))

    out_dir = ROOT / "target" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    sf_tag = f"sf{args.scale:g}"
    parquet_dir = out_dir / f"tpch-{sf_tag}-parquet"
    if not (parquet_dir / "lineitem.parquet").exists():
        print(f"generating TPC-H {sf_tag} Parquet into {parquet_dir} ...", flush=True)
        tmp = parquet_dir.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            [args.sqe_server, "generate-tpch", "--scale", str(args.scale), "--out", str(tmp)],
            check=True,
        )
        tmp.rename(parquet_dir)

    work = Path(tempfile.mkdtemp(prefix="sqe-bench-"))
    sqe = Sqe(Path(args.sqe_server), work / "data", args.threads)
    queries = load_queries()
    results = {}
    try:
        print("loading into Iceberg through Flight SQL bulk ingest ...", flush=True)
        t0 = time.perf_counter()
        total_rows = 0
        with sqe.conn.cursor() as cur:
            for t in TABLES:
                table = pq.read_table(parquet_dir / f"{t}.parquet")
                # the Flight client sends at most 16 MiB per message: stream in modest batches
                reader = pa.RecordBatchReader.from_batches(
                    table.schema, table.to_batches(max_chunksize=65536)
                )
                total_rows += cur.adbc_ingest(t, reader, mode="create", db_schema_name="tpch")
        sqe.conn.commit()
        load_s = time.perf_counter() - t0
        print(f"loaded {total_rows} rows in {load_s:.1f} s", flush=True)

        protocols = protocol_line(sqe, args.scale)
        if args.protocols_only:
            selected = []

        duck = duckdb.connect()
        duck.execute(f"SET threads TO {args.threads}")
        for t in TABLES:
            duck.execute(
                f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{parquet_dir / (t + '.parquet')}')"
            )

        for n in selected:
            stmts = queries[n]
            ti = timed_statement(stmts)
            timings = {"sqe": [], "duckdb": []}
            answers = {}
            for engine in ("sqe", "duckdb"):
                for run in range(args.runs + 1):
                    for i, s in enumerate(stmts):
                        if i == ti:
                            start = time.perf_counter()
                            if engine == "sqe":
                                rows = sqe.run(s).to_pylist()
                                rows = [tuple(r.values()) for r in rows]
                            else:
                                rows = duck.execute(s).fetchall()
                            elapsed = time.perf_counter() - start
                            if run > 0:
                                timings[engine].append(elapsed)
                            answers[engine] = rows
                        elif engine == "sqe":
                            sqe.run(s)
                        else:
                            duck.execute(s)
            same = rows_equal(answers["sqe"], answers["duckdb"])
            results[n] = {
                "sqe_s": statistics.median(timings["sqe"]),
                "duckdb_s": statistics.median(timings["duckdb"]),
                "rows": len(answers["sqe"]),
                "same_rows": same,
            }
            r = results[n]
            print(
                f"q{n:<2} sqe {r['sqe_s']*1000:8.1f} ms  duckdb {r['duckdb_s']*1000:8.1f} ms  "
                f"ratio {r['sqe_s']/r['duckdb_s']:5.2f}  rows {r['rows']:>4}  {'ok' if same else 'DIFFERENT'}",
                flush=True,
            )
        peak_rss = rss_mb(sqe.proc.pid)
    finally:
        sqe.stop()
        shutil.rmtree(work, ignore_errors=True)

    def geomean(xs):
        return math.exp(sum(math.log(x) for x in xs) / len(xs))

    if not results:
        report = "\n".join(protocol_table(protocols)) + "\n"
        print(report)
        (out_dir / f"protocols-{sf_tag}.md").write_text(report)
        return 0

    sqe_total = sum(r["sqe_s"] for r in results.values())
    duck_total = sum(r["duckdb_s"] for r in results.values())
    sqe_gm = geomean([r["sqe_s"] for r in results.values()])
    duck_gm = geomean([r["duckdb_s"] for r in results.values()])
    mismatches = [n for n, r in results.items() if not r["same_rows"]]

    lines = [
        f"# TPC-H {sf_tag}: SQE vs DuckDB {duckdb.__version__}",
        "",
        f"{dt.datetime.now().isoformat(timespec='seconds')} · {platform.node()} · "
        f"{os.cpu_count()} cores · {args.threads} threads · median of {args.runs} runs after a warm-up",
        f"SQE: Flight SQL (ADBC) over Iceberg tables loaded by bulk ingest in {load_s:.1f} s; "
        f"peak RSS {peak_rss:.0f} MiB. DuckDB: Parquet files.",
        "",
        "| query | SQE ms | DuckDB ms | SQE/DuckDB | rows | same rows |",
        "|------:|-------:|----------:|-----------:|-----:|:---------:|",
    ]
    for n, r in results.items():
        lines.append(
            f"| q{n} | {r['sqe_s']*1000:.1f} | {r['duckdb_s']*1000:.1f} | "
            f"{r['sqe_s']/r['duckdb_s']:.2f} | {r['rows']} | {'yes' if r['same_rows'] else '**no**'} |"
        )
    lines += [
        f"| **total** | {sqe_total*1000:.0f} | {duck_total*1000:.0f} | {sqe_total/duck_total:.2f} | | |",
        f"| **geomean** | {sqe_gm*1000:.1f} | {duck_gm*1000:.1f} | {sqe_gm/duck_gm:.2f} | | |",
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
                "load_seconds": load_s,
                "peak_rss_mib": peak_rss,
                "queries": results,
                "sqe_total_s": sqe_total,
                "duckdb_total_s": duck_total,
                "sqe_geomean_s": sqe_gm,
                "duckdb_geomean_s": duck_gm,
                "protocols": protocols,
            },
            indent=2,
        )
    )
    if mismatches:
        print(f"results differ for: {', '.join('q%d' % n for n in mismatches)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
