"""A hybrid SqeCluster from config/samples on a real node: it becomes Ready, its pod runs as the
image and the operator say it does (UID 1000, read-only root filesystem, no capabilities), both
client protocols answer through the coordinator's Service (from a client pod and from the host
through `kubectl port-forward`), and what lives on its emptyDir is gone after a restart."""

from __future__ import annotations

import time

import adbc_driver_flightsql.dbapi as flight_sql
import trino

from kube import Kubectl, wait_for
from pods_kit import USERS, Node, PortForward, json_rows, pods, run_cli_pod, run_trino_client_pod, wait_ready
from sqe_harness import REPO_ROOT

SAMPLE = REPO_ROOT / "config" / "samples" / "sqecluster-hybrid.yaml"
PASSWORD = USERS["alice"]
LINEITEM_ROWS = 60175  # the TPC-H sample (SF 0.01) every embedded catalog starts with


def _apply_sample(kc: Kubectl, ns: str) -> tuple[str, float]:
    sample = kc.yaml_to_json(SAMPLE)
    sample["metadata"]["namespace"] = ns
    t0 = time.monotonic()
    kc.apply(sample)
    name = sample["metadata"]["name"]
    wait_ready(kc, ns, name)
    return name, time.monotonic() - t0


def _flight(port: int, host: str = "127.0.0.1"):
    return flight_sql.connect(f"grpc://{host}:{port}", db_kwargs={"username": "alice", "password": PASSWORD})


def _scalar(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_sample_runs_as_uid_1000_read_only_without_capabilities(kc: Kubectl, node: Node, ns: str, record_property):
    name, seconds = _apply_sample(kc, ns)
    record_property("seconds_to_ready", round(seconds, 1))
    print(f"hybrid sample Ready {seconds:.1f}s after apply")
    [pod] = pods(kc, ns, "coordinator")
    [status] = pod["status"]["containerStatuses"]
    assert status["ready"] and status["restartCount"] == 0, status
    pid = node.container_pid(status["containerID"])

    # what the kernel says about the running process, not what the manifest asks for
    proc = _proc_status(pid)
    assert proc["Uid"].split() == ["1000"] * 4, proc["Uid"]
    assert proc["Gid"].split() == ["1000"] * 4, proc["Gid"]
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(proc[cap], 16) == 0, f"{cap} = {proc[cap]}"
    assert proc["NoNewPrivs"] == "1"
    assert proc["Seccomp"] == "2", "RuntimeDefault seccomp filter"
    with open(f"/proc/{pid}/mountinfo") as f:
        root = next(line.split() for line in f if line.split()[4] == "/")
    assert "ro" in root[5].split(","), f"root filesystem mounted {root[5]}"
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0].endswith(b"sqe-server")


def test_both_protocols_through_the_service_from_the_host_and_a_pod(kc: Kubectl, ns: str):
    name, _ = _apply_sample(kc, ns)
    service = f"{name}-coordinator"

    # from the host, through kubectl port-forward to the Service
    with PortForward(kc, ns, f"svc/{service}", 50051, 8080) as pf:
        with _flight(pf.local[50051]) as conn:
            assert _scalar(conn, "SELECT count(*) FROM tpch.lineitem") == LINEITEM_ROWS
            assert _scalar(conn, "SELECT current_user") == "alice"
        with trino.dbapi.connect(
            host="127.0.0.1", port=pf.local[8080], user="alice", http_scheme="http",
            auth=trino.auth.BasicAuthentication("alice", PASSWORD), allow_insecure_auth=True,
        ) as conn:
            cur = conn.cursor()
            cur.execute("SELECT count(*) FROM tpch.orders WHERE o_orderstatus = 'F'")
            assert cur.fetchall() == [[7304]]

    # from client pods, by the Service's DNS name: sqe-cli (Flight SQL) from the same image, and
    # the Python Trino client
    host = f"{service}.{ns}.svc.cluster.local"
    image = kc.get("deployment", f"{name}-coordinator", ns)["spec"]["template"]["spec"]["containers"][0]["image"]
    logs = run_cli_pod(kc, ns, "flight-sql-client", image, [
        "--host", host, "--format", "json", "-e", "SELECT count(*) AS n FROM tpch.customer"])
    assert json_rows(logs) == [{"n": 1500}], logs
    assert run_trino_client_pod(kc, ns, "trino-client", host,
                                "SELECT n_name, current_user FROM tpch.nation WHERE n_nationkey = 7") == [["GERMANY", "alice"]]


def test_emptydir_data_is_gone_after_a_restart_and_the_sample_is_back(kc: Kubectl, ns: str):
    """The hybrid sample keeps its embedded catalog on an emptyDir (docs/operator.md): for trying
    SQE out. A table created there does not survive the pod; the TPC-H sample is made again."""
    name, _ = _apply_sample(kc, ns)
    [pod] = pods(kc, ns, "coordinator")
    with PortForward(kc, ns, f"pod/{pod['metadata']['name']}", 50051) as pf, _flight(pf.local[50051]) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE notes AS SELECT 1 AS id, 'kept?' AS body")
            cur.fetchall()
        assert _scalar(conn, "SELECT count(*) FROM notes") == 1

    kc.run("delete", "pod", "-n", ns, pod["metadata"]["name"], "--wait=true", timeout=90)

    def replaced() -> dict | None:
        now = [p for p in pods(kc, ns, "coordinator")
               if p["metadata"]["name"] != pod["metadata"]["name"]
               and all(s.get("ready") for s in (p.get("status") or {}).get("containerStatuses") or [{}])]
        return now[0] if now else None

    new = wait_for(replaced, 90, "a new coordinator pod Ready")
    with PortForward(kc, ns, f"pod/{new['metadata']['name']}", 50051) as pf, _flight(pf.local[50051]) as conn:
        assert _scalar(conn, "SELECT count(*) FROM tpch.lineitem") == LINEITEM_ROWS
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT count(*) FROM notes")
                cur.fetchall()
            except Exception as e:  # noqa: BLE001 - the error is the assertion
                assert "notes" in str(e), str(e)
            else:
                raise AssertionError("the table on the emptyDir survived the pod")
