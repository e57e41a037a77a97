"""Helpers for the operator's end-to-end suite: kubectl, watches, the audit log, the operator
process, SqeCluster manifests and the assertions several cases share.

Everything talks to the API server through `kubectl` (the v1.32 client on the PATH) so what the
tests do is exactly what a user would type. Waiting is always a poll with a deadline
(`wait_for`), never a bare sleep; the only deliberate waits are the "nothing happens" windows
(`assert_stays`, the idle minute), which must let time pass to prove an absence.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqe_harness import (
    REPO_ROOT,
    LoggedProcess,
    base_env,
    free_ports,
    http_get,
    metric_sum,
    parse_metrics,
    terminate,
)
from sqe_harness import wait_for as _wait_for

GROUP = "sqe.dev"
API_VERSION = "sqe.dev/v1alpha1"
#: The identity the operator runs under (a client certificate from user-kubeconfig.sh, bound by
#: config/rbac to the ClusterRole sqe-operator as the ServiceAccount sqe-system/sqe-operator).
OPERATOR_NAMESPACE = "sqe-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:sqe-operator"
OPERATOR_GROUPS = ("system:serviceaccounts",)
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
#: Label on every namespace the suite creates (so a case can wait for the others to be gone).
SUITE_LABEL = "e2e.sqe.dev/suite"
#: The image tag the operator defaults to (its own version).
OPERATOR_VERSION = "0.1.0"
DEFAULT_REPOSITORY = "ghcr.io/sqe-dev/sqe"


def operator_binary() -> Path:
    return Path(os.environ.get("SQE_OPERATOR_BIN", REPO_ROOT / "target" / "release" / "sqe-operator"))


# --------------------------------------------------------------------------------------------
# Waiting


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """`sqe_harness.wait_for`, polling less often: each poll here usually runs kubectl."""
    return _wait_for(predicate, timeout, what, interval)


def assert_stays(check: Callable[[], Any], seconds: float, what: str, interval: float = 0.5) -> None:
    """Asserts that `check()` stays truthy for `seconds` (a window in which something must
    NOT happen). Fails as soon as it is falsy."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        assert value, f"{what}: stopped holding after {seconds - (deadline - time.monotonic()):.1f}s ({value!r})"
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# kubectl


class KubectlError(AssertionError):
    pass


class Kubectl:
    """`kubectl --kubeconfig <file> ...` with JSON in and out."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = Path(kubeconfig)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def run(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        cmd = ["kubectl", "--kubeconfig", str(self.kubeconfig), *args]
        try:
            proc = subprocess.run(
                cmd, input=input, capture_output=True, text=True, timeout=timeout, env=self.env()
            )
        except subprocess.TimeoutExpired:
            raise KubectlError(f"`{' '.join(cmd)}` did not finish in {timeout:.0f}s") from None
        if check and proc.returncode != 0:
            raise KubectlError(
                f"`{' '.join(cmd)}` exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        out = self.run(*args, "-o", "json").stdout
        return json.loads(out) if out.strip() else None

    def get(self, kind: str, name: str, ns: str | None = None) -> dict | None:
        args = ["get", kind, name, "--ignore-not-found"]
        if ns:
            args += ["-n", ns]
        return self.json(*args)

    def list(self, kind: str, ns: str | None = None, selector: str | None = None) -> list[dict]:
        args = ["get", kind]
        args += ["-n", ns] if ns else ["-A"]
        if selector:
            args += ["-l", selector]
        return (self.json(*args) or {}).get("items", [])

    def apply(
        self, obj: dict | list[dict], field_manager: str = "e2e", force: bool = False
    ) -> subprocess.CompletedProcess:
        """`kubectl apply --server-side` of one object or a list."""
        body = obj if isinstance(obj, dict) else {"apiVersion": "v1", "kind": "List", "items": obj}
        args = ["apply", "--server-side", f"--field-manager={field_manager}", "-f", "-"]
        if force:
            args.append("--force-conflicts")
        return self.run(*args, input=json.dumps(body))

    def create(self, obj: dict, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("create", *extra, "-f", "-", input=json.dumps(obj), check=check)

    def patch(self, kind: str, name: str, ns: str, patch: dict, type_: str = "merge") -> None:
        self.run("patch", kind, name, "-n", ns, "--type", type_, "-p", json.dumps(patch))

    def delete(self, kind: str, name: str, ns: str | None = None, wait: bool = False) -> None:
        args = ["delete", kind, name, "--ignore-not-found", f"--wait={'true' if wait else 'false'}"]
        if ns:
            args += ["-n", ns]
        self.run(*args)

    def wait_crd_established(self, name: str, timeout: float = 60) -> None:
        """Polls until the CRD reports Established=True (`kubectl wait` fails outright while the
        new CRD has no conditions yet)."""

        def established() -> bool:
            crd = self.get("crd", name)
            conds = ((crd or {}).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

        wait_for(established, timeout, f"CRD {name} Established")

    def yaml_to_json(self, path: Path) -> dict:
        """A manifest file as JSON, through kubectl's client-side dry run (no PyYAML needed)."""
        return self.json("create", "--dry-run=client", "-f", str(path))


# --------------------------------------------------------------------------------------------
# Watches


@dataclass
class WatchEvent:
    at: float  # time.monotonic() when it was read
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]


class Watch:
    """`kubectl get <kind> -w --output-watch-events -o json` in the background: every change of
    the watched objects, in the API server's order (one stream, so events of different objects
    are ordered by resourceVersion)."""

    def __init__(self, kc: Kubectl, kind: str, ns: str, selector: str | None = None) -> None:
        args = ["kubectl", "--kubeconfig", str(kc.kubeconfig), "get", kind, "-n", ns, "-w",
                "--output-watch-events", "-o", "json"]
        if selector:
            args += ["-l", selector]
        self.events: list[WatchEvent] = []
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=kc.env()
        )
        self._thread = threading.Thread(target=self._read, daemon=True, name=f"watch-{kind}")
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        decoder = json.JSONDecoder()
        buf = ""
        # kubectl writes one compact JSON object per line to a pipe (pretty-printed to a TTY);
        # decode objects from the stream whatever the layout.
        for line in self._proc.stdout:
            buf += line
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    ev, end = decoder.raw_decode(buf)
                except json.JSONDecodeError:
                    break  # incomplete: read more
                buf = buf[end:]
                with self._lock:
                    self.events.append(WatchEvent(time.monotonic(), ev.get("type", ""), ev.get("object", {})))

    def snapshot(self) -> list[WatchEvent]:
        with self._lock:
            return list(self.events)

    def wait_synced(self, names: Iterable[str], timeout: float = 20) -> None:
        """Waits until the initial ADDED events of `names` arrived (the watch is running)."""
        wanted = set(names)
        wait_for(lambda: wanted <= {e.name for e in self.snapshot()}, timeout, f"watch to list {sorted(wanted)}")

    def stop(self) -> list[WatchEvent]:
        terminate(self._proc, 5)
        self._thread.join(5)
        return self.snapshot()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# The audit log


class AuditLog:
    """The local control plane's audit log (JSON lines, one per request, written before the
    response). Read by byte offset, so a window is "everything after offset X"."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def offset(self) -> int:
        return self.path.stat().st_size

    def events_since(self, offset: int) -> list[dict]:
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read()
        out = []
        for line in data.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written right now
        return out

    def writes_since(
        self,
        offset: int,
        user: str = OPERATOR_USER,
        namespace: str | None = None,
        include_leases: bool = False,
    ) -> list[dict]:
        """Write requests (create/update/patch/delete) by `user` after `offset`."""
        out = []
        for ev in self.events_since(offset):
            if ev.get("verb") not in WRITE_VERBS or ev.get("user", {}).get("username") != user:
                continue
            ref = ev.get("objectRef") or {}
            if not include_leases and ref.get("apiGroup") == "coordination.k8s.io":
                continue
            if namespace is not None and ref.get("namespace") != namespace:
                continue
            out.append(ev)
        return out


def describe_requests(events: list[dict]) -> str:
    return "\n".join(
        f"  {e.get('verb')} {(e.get('objectRef') or {}).get('resource')}"
        f"{'/' + e['objectRef']['subresource'] if (e.get('objectRef') or {}).get('subresource') else ''}"
        f" {(e.get('objectRef') or {}).get('namespace')}/{(e.get('objectRef') or {}).get('name')}"
        f" -> {(e.get('responseStatus') or {}).get('code')}"
        for e in events
    )


# --------------------------------------------------------------------------------------------
# The operator process


class OperatorProcess(LoggedProcess):
    """One `sqe-operator run` process on a free 127.0.0.1 port, running under the operator's own
    identity (its kubeconfig). Output goes to `log_path` (appended across restarts)."""

    def __init__(self, kubeconfig: Path, log_path: Path, identity: str, extra_args: Iterable[str] = ()) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.log_path = Path(log_path)
        self.identity = identity
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.returncode: int | None = None
        LoggedProcess.registry.append(self)

    @property
    def log_title(self) -> str:
        return f"operator log ({self.identity})"

    def command(self) -> list[str]:
        return [
            str(operator_binary()), "run",
            "--listen-addr", f"127.0.0.1:{self.port}",
            "--lease-namespace", OPERATOR_NAMESPACE,
            "--identity", self.identity,
            *self.extra_args,
        ]

    def start(self, wait_ready: bool = True, timeout: float = 30) -> OperatorProcess:
        assert not self.running, f"operator {self.identity} is already running"
        for attempt in range(3):
            (self.port,) = free_ports(1)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(self.command())}\n".encode())
                log.flush()
                env = base_env({"KUBECONFIG": str(self.kubeconfig), "SQE_OPERATOR_LOG": "info,kube=warn", "NO_COLOR": "1"})
                self.proc = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
                )
            self.started_at = time.monotonic()
            self.stopped_at = None
            if not wait_ready:
                return self
            try:
                wait_for(self._ready, timeout, f"operator {self.identity} /readyz")
                return self
            except AssertionError:
                if self.proc.poll() is not None and "in use" in self.log_tail(5) and attempt < 2:
                    continue
                raise AssertionError(f"operator {self.identity} did not become ready\n{self.log_tail()}") from None
        raise AssertionError("unreachable")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"operator {self.identity} exited with {self.proc.returncode}\n{self.log_tail()}")
        try:
            return http_get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)[0] == 200
        except OSError:
            return False

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        self.returncode = terminate(self.proc, timeout)
        self.stopped_at = self.stopped_at or time.monotonic()
        return self.returncode

    def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        status, body = http_get(f"http://127.0.0.1:{self.port}/metrics", timeout=5)
        assert status == 200, f"operator /metrics returned {status}"
        return parse_metrics(body)

    def metric(self, name: str, **labels: str) -> float:
        return metric_sum(self.metrics(), name, **labels) or 0.0

    def writes(self, **labels: str) -> float:
        """`sqe_operator_api_writes_total`, summed over the labels not given."""
        return self.metric("sqe_operator_api_writes_total", **labels)

    def reconcile_failures(self, offset: int, namespace: str) -> list[str]:
        """`reconcile failed` log lines about clusters in `namespace` written after `offset`."""
        return [line for line in self.log_since(offset).splitlines()
                if "reconcile failed" in line and f'namespace="{namespace}"' in line]


# --------------------------------------------------------------------------------------------
# Manifests


def cluster_manifest(name: str, ns: str, spec: dict, **metadata: Any) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "SqeCluster",
        "metadata": {"name": name, "namespace": ns, **metadata},
        "spec": spec,
    }


def distributed_spec(tag: str = "1.0.0", replicas: int = 2, **extra: Any) -> dict:
    """A distributed cluster on a (fake, never contacted) REST catalog."""
    spec: dict[str, Any] = {
        "mode": "distributed",
        "image": {"repository": DEFAULT_REPOSITORY, "tag": tag},
        "workers": {"replicas": replicas},
        "catalog": {"uri": "http://polaris.lakehouse.svc:8181/api/catalog", "warehouse": "e2e"},
        "auth": {"usersSecret": {"name": "sqe-users"}},
    }
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(spec.get(k), dict):
            spec[k] = {**spec[k], **v}
        else:
            spec[k] = v
    return spec


def secret_manifest(name: str, ns: str, data: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "Opaque",
        "stringData": data,
    }


# --------------------------------------------------------------------------------------------
# Reading clusters and their children


def condition(obj: dict | None, type_: str) -> dict | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def is_true(obj: dict | None, type_: str) -> bool:
    c = condition(obj, type_)
    return bool(c and c.get("status") == "True")


def template_annotations(deploy: dict) -> dict[str, str]:
    return deploy["spec"]["template"]["metadata"].get("annotations") or {}


def template_hash(deploy: dict) -> str:
    return template_annotations(deploy).get("sqe.dev/template-hash", "")


def image_of(deploy: dict) -> str:
    return deploy["spec"]["template"]["spec"]["containers"][0]["image"]


def fully_rolled(deploy: dict | None) -> bool:
    """The Deployment controller saw the current spec; every pod runs it and is available."""
    if not deploy:
        return False
    st = deploy.get("status") or {}
    want = deploy["spec"].get("replicas", 1)
    return (
        st.get("observedGeneration", 0) >= deploy["metadata"]["generation"]
        and st.get("updatedReplicas", 0) == want
        and st.get("replicas", 0) == want
        and st.get("availableReplicas", 0) == want
    )


def revision(deploy: dict) -> str:
    return (deploy["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "")


class Cluster:
    """An SqeCluster under test: its name, namespace, and reads of it and its children."""

    def __init__(self, kc: Kubectl, ns: str, name: str) -> None:
        self.kc, self.ns, self.name = kc, ns, name

    @property
    def coordinator(self) -> str:
        return f"{self.name}-coordinator"

    @property
    def workers(self) -> str:
        return f"{self.name}-workers"

    def get(self) -> dict:
        obj = self.kc.get("sqecluster", self.name, self.ns)
        assert obj is not None, f"SqeCluster {self.ns}/{self.name} does not exist"
        return obj

    def status(self) -> dict:
        return self.get().get("status") or {}

    def deployment(self, name: str) -> dict | None:
        return self.kc.get("deployment", name, self.ns)

    def replicasets(self, component: str) -> list[dict]:
        return self.kc.list(
            "replicasets", self.ns,
            f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}",
        )

    def pods(self, component: str) -> list[dict]:
        return self.kc.list(
            "pods", self.ns, f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}"
        )

    def patch(self, patch: dict) -> None:
        self.kc.patch("sqecluster", self.name, self.ns, patch)

    def events(self) -> list[dict]:
        """events.k8s.io Events about this SqeCluster, oldest first."""
        items = self.kc.list("events.events.k8s.io", self.ns)
        mine = [
            e for e in items
            if (e.get("regarding") or {}).get("kind") == "SqeCluster"
            and (e.get("regarding") or {}).get("name") == self.name
        ]
        return sorted(mine, key=lambda e: (e.get("eventTime") or e["metadata"]["creationTimestamp"]))

    def event_counts(self) -> dict[str, int]:
        """How many times each reason was reported (a repeated Event counts its series)."""
        counts: dict[str, int] = {}
        for e in self.events():
            n = ((e.get("series") or {}).get("count")) or 1
            counts[e["reason"]] = counts.get(e["reason"], 0) + n
        return counts

    def settled(self, distributed: bool = True) -> dict | None:
        """The object if the operator caught up with the current generation, the cluster is
        Ready, no rollout is going on, every Deployment is fully rolled and the operator has
        seen that too (Progressing=False, so the replica counts in status are current); else
        None."""
        obj = self.get()
        st = obj.get("status") or {}
        if st.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        if not is_true(obj, "Ready") or (st.get("rollout") or {}).get("phase") != "Idle":
            return None
        if is_true(obj, "Progressing"):
            return None
        if st.get("phase") != "Running":
            return None
        if not fully_rolled(self.deployment(self.coordinator)):
            return None
        if distributed and not fully_rolled(self.deployment(self.workers)):
            return None
        return obj

    def wait_settled(self, timeout: float = 90, distributed: bool = True) -> dict:
        return wait_for(lambda: self.settled(distributed), timeout, f"SqeCluster {self.ns}/{self.name} Ready and idle")


def create_cluster(kc: Kubectl, ns: str, name: str, spec: dict, timeout: float = 90) -> Cluster:
    kc.apply(cluster_manifest(name, ns, spec))
    c = Cluster(kc, ns, name)
    c.wait_settled(timeout, distributed=spec.get("mode") == "distributed")
    return c


# --------------------------------------------------------------------------------------------
# Rollout timelines


@dataclass
class Timeline:
    """Deployment watch events of one cluster, and where each part changed template."""

    events: list[WatchEvent]
    coordinator: str
    workers: str
    old: dict[str, str] = field(default_factory=dict)  # deployment name -> template hash before

    def of(self, name: str) -> list[tuple[int, WatchEvent]]:
        return [(i, e) for i, e in enumerate(self.events) if e.name == name]

    def first_change(self, name: str) -> int | None:
        """Index of the first event where `name`'s template hash is not the old one."""
        for i, e in self.of(name):
            if template_hash(e.obj) != self.old[name]:
                return i
        return None

    def last_before(self, name: str, index: int) -> WatchEvent | None:
        found = None
        for i, e in self.of(name):
            if i >= index:
                break
            found = e
        return found

    def template_hashes(self, name: str) -> list[str]:
        """Distinct template hashes `name` went through, in order."""
        seen: list[str] = []
        for _, e in self.of(name):
            h = template_hash(e.obj)
            if not seen or seen[-1] != h:
                seen.append(h)
        return seen

    def describe(self) -> str:
        lines = []
        for e in self.events:
            st = e.obj.get("status") or {}
            lines.append(
                f"  {e.type:8} {e.name:28} gen={e.obj['metadata'].get('generation')} "
                f"obs={st.get('observedGeneration')} tmpl={template_hash(e.obj)[:8]} img={image_of(e.obj)} "
                f"replicas={e.obj['spec'].get('replicas')} status={st.get('replicas')}/"
                f"{st.get('updatedReplicas')}/{st.get('availableReplicas')}"
            )
        return "\n".join(lines)


def assert_workers_first(tl: Timeline) -> None:
    """The coordinator's pod template did not change until every worker ran the new template
    and was available; then the coordinator rolled."""
    w_change = tl.first_change(tl.workers)
    c_change = tl.first_change(tl.coordinator)
    assert w_change is not None, f"the worker template never changed\n{tl.describe()}"
    assert c_change is not None, f"the coordinator template never changed\n{tl.describe()}"
    assert w_change < c_change, f"the coordinator changed before the workers\n{tl.describe()}"
    before = tl.last_before(tl.workers, c_change)
    assert before is not None
    assert template_hash(before.obj) != tl.old[tl.workers], tl.describe()
    assert fully_rolled(before.obj), (
        "the coordinator's template changed while the workers were not fully rolled "
        f"(last worker state before it: event {tl.events.index(before)})\n{tl.describe()}"
    )
    # The coordinator only ever went old -> new (no intermediate template, no flapping).
    assert len(tl.template_hashes(tl.coordinator)) == 2, tl.describe()
    assert len(tl.template_hashes(tl.workers)) == 2, tl.describe()


def record_rollout(
    c: Cluster, change: Callable[[], None], timeout: float = 90, expect: Callable[[dict], bool] | None = None
) -> Timeline:
    """Watches the cluster's Deployments while `change()` rolls it, until the cluster is settled
    again (and `expect(obj)` holds); returns the timeline."""
    old = {n: template_hash(c.deployment(n)) for n in (c.workers, c.coordinator)}
    with Watch(c.kc, "deployments", c.ns, f"app.kubernetes.io/instance={c.name}") as w:
        w.wait_synced(old)
        change()

        def done() -> bool:
            obj = c.settled()
            if not obj or (expect is not None and not expect(obj)):
                return False
            # The watch has seen the coordinator's new template fully rolled, too.
            evs = [e for e in w.snapshot() if e.name == c.coordinator]
            return bool(evs) and template_hash(evs[-1].obj) != old[c.coordinator] and fully_rolled(evs[-1].obj)

        wait_for(done, timeout, f"{c.ns}/{c.name} to roll and settle", interval=0.3)
        events = w.stop()
    return Timeline(events, c.coordinator, c.workers, old)


def namespace_name(test_name: str, suffix: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower().removeprefix("test_").replace("_", "-")).strip("-")
    return f"e2e-{base[:40].rstrip('-')}-{suffix}"
