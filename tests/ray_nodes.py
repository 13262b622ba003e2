"""A real two-node Ray cluster on one machine, for the tests: a head started with `ray start --head` and a second
node with `ray start --address=…`, as on a Slurm allocation, but on loopback addresses of this machine.

- **Two addresses.** The head is 127.0.0.2 and the second node 127.0.0.3 (both loopback; Ray rewrites 127.0.0.1
  to the machine's network address, but not the rest of 127/8), so every node, task and log names its node.
- **Two "disks".** Each node has its own --temp-dir (Ray's sockets, logs and spilled objects), and `head_disk`
  is a folder that only the head sees: the second node runs in its own mount namespace (`unshare --mount`), where
  an empty tmpfs is mounted over that folder. A file put there exists for the head and the driver and is missing
  on the second node — what a node's local scratch disk looks like to the rest of a cluster. Everything else is
  shared, like a cluster's shared file system. Without mount namespaces (no root and no user namespaces), the
  second node sees everything and `separate_disks` is False.
- **Resources.** The head has 2 CPUs and the custom resource `node_head`, the second node 1 CPU and `node_worker`;
  a placeholder pinned to the head (`hold_head_cpu`) leaves one free CPU on each node, so that two replicas or two
  trials must run one on each node.
- **No token.** Token authentication is off (RAY_AUTH_MODE=disabled) for the nodes and the drivers: every
  address is on loopback, and ~/.ray/auth_token belongs to whoever else uses Ray on the machine.
- **Cleanup.** Each `ray start --block` runs in its own session; stop() kills those process groups and then, by
  process id, anything left whose command line names this cluster's folder (Ray's workers). Never `ray stop`: it
  kills every Ray process on the machine, other people's too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
# Every process of the cluster and its drivers: no usage reports, and no token authentication (the cluster listens on
# loopback addresses only; a token in ~/.ray/auth_token, which other Ray users of this machine may create or
# replace at any time, would otherwise switch it on for some processes and not others).
ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
# Node loss is noticed in about 5 s (five missed checks one second apart) instead of Ray's default of about 30 s;
# a slow but live node still has 5 s to answer each check.
HEALTH_CHECKS = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "5000",
                 "RAY_health_check_failure_threshold": "5"}


# Processes, read from /proc (Linux, as the mount namespaces are): which exist, their parents, names, command lines.

def processes() -> dict:
    """{pid: (parent pid, name, command line)} of every process now."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:   # it ended meanwhile
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        table[int(entry.name)] = (parent, name, command)
    return table


def descendants(pid: int) -> list[int]:
    table = processes()
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, (parent, _, _) in table.items() if parent in frontier]
        found += children
        frontier = children
    return found


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def mount_namespace_prefix() -> list[str] | None:
    """The `unshare` words that give a process its own mount namespace here, or None when neither root's nor an
    unprivileged user namespace's is allowed."""
    for prefix in (["unshare", "--mount", "--propagation", "private"],
                   ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]):
        if shutil.which(prefix[0]) is None:
            return None
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


class TwoNodeCluster:
    def __init__(self, root: Path, environment: dict | None = None):
        self.root = Path(root)
        self.head_disk = self.root / "head_disk"
        self.head_disk.mkdir(parents=True, exist_ok=True)
        # without the test suite's training guard (conftest.py): the nodes outlive the test that started them
        self.environment = {**{name: value for name, value in (environment or os.environ).items()
                               if name != "IMAGESASDATA_TRAINING"}, **ENVIRONMENT}
        self.port = free_port(HEAD_IP)
        self.address = f"{HEAD_IP}:{self.port}"
        self.namespace = mount_namespace_prefix()
        self.separate_disks = self.namespace is not None
        self.head = self.worker = None
        self.worker_starts = 0

    # -------------------------------------------------------------------------------------------- starting

    def _common(self, node: str, cpus: int, resource: str) -> list[str]:
        temp = self.root / node
        temp.mkdir(exist_ok=True)
        return ["--block", f"--num-cpus={cpus}", "--num-gpus=0", f"--resources={json.dumps({resource: 1})}",
                f"--temp-dir={temp}", "--min-worker-port=0", "--max-worker-port=0",
                "--dashboard-agent-listen-port=0", "--object-store-memory=100000000", "--disable-usage-stats"]

    def start(self, timeout: float = 120) -> "TwoNodeCluster":
        command = [RAY, "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={self.port}",
                   f"--ray-client-server-port={free_port(HEAD_IP)}", "--include-dashboard=false",
                   *self._common("head", 2, "node_head")]
        with open(self.root / "head.log", "ab") as log:
            self.head = subprocess.Popen(command, env={**self.environment, **HEALTH_CHECKS}, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((HEAD_IP, self.port), timeout=1).close()
                break
            except OSError:
                if self.head.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Ray head did not start: {self.log('head')}") from None
                time.sleep(0.2)
        self.start_worker()
        return self

    def start_worker(self) -> None:
        """The second node, in its own mount namespace where head_disk is an empty tmpfs (when allowed)."""
        command = [RAY, "start", f"--address={self.address}", f"--node-ip-address={WORKER_IP}",
                   *self._common("worker", 1, "node_worker")]
        if self.namespace:
            quoted = " ".join(f"'{word}'" for word in command)
            command = [*self.namespace, "sh", "-c", f"mount -t tmpfs tmpfs '{self.head_disk}' && exec {quoted}"]
        with open(self.root / "worker.log", "ab") as log:
            self.worker = subprocess.Popen(command, env=self.environment, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        self.worker_starts += 1

    def wait_for_nodes(self, ray, count: int = 2, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.alive(ray)) < count:
            if self.worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the second Ray node did not join: {self.log('worker')}")
            time.sleep(0.3)

    @staticmethod
    def alive(ray) -> dict:
        """{address: node id} of the nodes alive now."""
        return {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}

    def ensure_worker(self, ray) -> None:
        """Start the second node again if a test killed it."""
        if WORKER_IP not in self.alive(ray):
            self._kill_group(self.worker)
            self.start_worker()
        self.wait_for_nodes(ray)

    # -------------------------------------------------------------------------------------------- faults

    def worker_raylet(self) -> int:
        table = processes()
        for pid in descendants(self.worker.pid):
            if pid in table and table[pid][1] == "raylet":
                return pid
        raise RuntimeError("the second node has no raylet")

    def kill_worker_raylet(self) -> None:
        """Node loss: SIGKILL the second node's raylet, as a spot interruption or a pre-empted Slurm node would."""
        kill(self.worker_raylet())

    def wait_until_lost(self, ray, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while WORKER_IP in self.alive(ray):
            if time.monotonic() > deadline:
                raise RuntimeError("Ray did not notice the lost node")
            time.sleep(0.2)

    # -------------------------------------------------------------------------------------------- evidence

    def actors_started_on(self, node: str) -> list[str]:
        """The actor classes Ray started on a node ("head" or "worker"), read from that node's own worker logs
        (each node logs under its own --temp-dir): evidence, independent of imagesasdata, of where work ran."""
        names = []
        for log in sorted((self.root / node).glob("session_*/logs/worker-*.out")):
            names += [line.split(":actor_name:", 1)[1].strip() for line in log.read_text(errors="replace").splitlines()
                      if line.startswith(":actor_name:")]
        return names

    def log(self, node: str) -> str:
        path = self.root / f"{node}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # -------------------------------------------------------------------------------------------- stopping

    @staticmethod
    def _kill_group(process) -> None:
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

    def leftovers(self) -> list[int]:
        """Processes of this cluster still running: those whose command line names its folder (raylets, GCS, agents)
        and their descendants (Ray's workers, which rename themselves "ray::…")."""
        named = [pid for pid, (_, _, command) in processes().items() if str(self.root) + os.sep in command]
        return sorted(set(named + [child for pid in named for child in descendants(pid)]) - {os.getpid()})

    def stop(self, timeout: float = 30) -> None:
        """Kill both nodes' process groups, then any process of this cluster still alive (by id)."""
        self._kill_group(self.worker)
        self._kill_group(self.head)
        deadline = time.monotonic() + timeout
        while (left := self.leftovers()) and time.monotonic() < deadline:
            for pid in left:
                kill(pid)
            time.sleep(0.2)
        if self.leftovers():
            raise RuntimeError(f"Ray processes of {self.root} are still running: {self.leftovers()}")
