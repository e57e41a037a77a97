#!/usr/bin/env python3
"""`make run-distributed`: a coordinator and two workers on this machine, until Ctrl-C.

The coordinator keeps the engine's default ports (Flight SQL 50051, Trino 8080, health 9091,
metrics 9090) and its data in ./sqe-data-distributed (the TPC-H sample in schema `tpch`, loaded
on the first start). Worker n listens for Flight on 5006n, health on 9091+100·n and metrics on
9090+100·n. A fresh internal token is generated on every start. The three logs are streamed
here, each line prefixed with its process's name. Ctrl-C or SIGTERM stops the workers first,
then the coordinator (SIGTERM, a bounded wait, SIGKILL as a last resort), and exits 0.

Standard library only: runs with any Python 3.11.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from sqe_local import (ROOT, ClusterSpec, CoordinatorPorts, LocalCluster, ProcessFailed,
                       WorkerPorts)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path("sqe-data-distributed"))
    ap.add_argument("--bin-dir", type=Path, default=ROOT / "target" / "release",
                    help="where sqe-server, sqe-worker and sqe-cli are")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-memory-mb", type=int, default=0, help="each worker's pool; 0 = unlimited")
    ap.add_argument("--no-sample", action="store_true", help="do not load the TPC-H sample")
    return ap.parse_args()


def connection_help(cluster: LocalCluster, bin_dir: Path) -> str:
    p = cluster.ports
    cli = bin_dir / "sqe-cli"
    try:
        cli = cli.relative_to(Path.cwd())
    except ValueError:
        pass
    trino_cli = "~/.cache/sqe/trino-476/trino-cli.jar"
    rows = [("process", "pid", "Flight", "health", "metrics", "")]
    rows.append(("coordinator", str(cluster.coordinator.pid), str(p.flight_sql), str(p.health),
                 str(p.metrics), f"Trino HTTP {p.trino_http}"))
    for w in cluster.workers:
        wp = cluster.worker_ports[w.name]
        rows.append((w.name, str(w.pid), str(wp.flight), str(wp.health), str(wp.metrics), ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([
        "",
        f"SQE distributed: a coordinator and {len(cluster.workers)} workers are ready "
        f"(data in {cluster.spec.data_dir}, all on 127.0.0.1).",
        *table,
        "",
        f"  Flight SQL (ADBC, pyarrow, Flight SQL JDBC): {cluster.flight_sql_uri}",
        f"    {cli} --host 127.0.0.1 --port {p.flight_sql} -e \"SELECT * FROM system.runtime.nodes\"",
        f"  Trino protocol (trino CLI, JDBC, the trino Python client): {cluster.trino_url}",
        f"    java -jar {trino_cli} --server {cluster.trino_url} --catalog iceberg --schema tpch",
        "  Try:  SELECT * FROM system.runtime.nodes;",
        "        SELECT l_returnflag, count(*) FROM tpch.lineitem GROUP BY 1;",
        "        SELECT node_id, count(*) FROM system.runtime.tasks GROUP BY 1;",
        "  The sample's tables are one data file each, and a one-file scan stays on the coordinator;",
        "  a table of several files reaches the workers:",
        "        CREATE TABLE li AS SELECT * FROM tpch.lineitem;  -- then, a few times:",
        "        INSERT INTO li SELECT * FROM tpch.lineitem;",
        "        SELECT l_returnflag, count(*) FROM li GROUP BY 1;",
        "",
        "Ctrl-C stops the workers, then the coordinator.",
        "",
    ])


def main() -> int:
    args = parse_args()
    for name in ("sqe-server", "sqe-worker"):
        if not (args.bin_dir / name).exists():
            print(f"{args.bin_dir / name} is missing: run `make build` first", file=sys.stderr)
            return 2
    spec = ClusterSpec(
        mode="distributed",
        data_dir=args.data_dir,
        server_bin=args.bin_dir / "sqe-server",
        worker_bin=args.bin_dir / "sqe-worker",
        workers=args.workers,
        sample_data=not args.no_sample,
        worker_memory_mb=args.worker_memory_mb,
        coordinator_ports=CoordinatorPorts.defaults(),
        worker_ports=[WorkerPorts.fixed(n) for n in range(1, args.workers + 1)],
        logs_dir=None,  # stream them here
    )
    cluster = LocalCluster(spec)
    busy = cluster.ports_in_use()
    if busy:
        print(f"ports already in use: {', '.join(busy)}; is `make run` or another "
              "run-distributed still running?", file=sys.stderr)
        return 2

    # While starting, Ctrl-C or SIGTERM interrupts the wait; start() stops what it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        cluster.start()
    except ProcessFailed as e:
        print(f"\nrun-distributed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted while starting; stopped", flush=True)
        return 0

    stop_requested = threading.Event()

    def request_stop(signum, _frame):
        print(f"\n{signal.Signals(signum).name}: stopping the workers, then the coordinator",
              flush=True)
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(connection_help(cluster, args.bin_dir), flush=True)

    exit_code = 0
    while not stop_requested.wait(0.5):
        gone = cluster.check_alive()
        if gone:
            print(f"\nrun-distributed: {', '.join(gone)}; stopping the others", file=sys.stderr)
            for p in cluster.processes:
                if p.exit_code() is not None:
                    print(p.log_tail(), file=sys.stderr)
            exit_code = 1
            break
    for line in cluster.stop():
        print(line, flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
