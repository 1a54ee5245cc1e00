"""A real Redis Cluster for tests: 3 masters and 3 replicas on free loopback ports.

Started with Redis's own tools (``redis-server --cluster-enabled yes`` per node,
then ``redis-cli --cluster create ... --cluster-replicas 1``), each node in its
own folder. ``cluster-node-timeout`` is 1 s, so a dead master is failed over to
its replica within a few seconds.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.integration.conftest import free_port

NODE_TIMEOUT_MS = 1000
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000


@dataclass
class ClusterNodeProcess:
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)

    def role(self) -> str:
        return str(self.client().info("replication")["role"])

    def kill(self) -> None:
        """SIGKILL: the process dies without a goodbye, as a crashed host would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class LocalRedisCluster:
    root: Path
    masters: int = 3
    replicas_per_master: int = 1
    nodes: list[ClusterNodeProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://{self.nodes[0].address}/0"

    @property
    def startup_nodes(self) -> str:
        """The rest of the nodes, as FEASTLINE_REDIS_STARTUP_NODES takes them."""
        return ",".join(node.address for node in self.nodes[1:])

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        for _ in range(self.masters * (1 + self.replicas_per_master)):
            port = _node_port({n.port for n in self.nodes})
            workdir = self.root / f"node-{port}"
            workdir.mkdir(parents=True)
            node = ClusterNodeProcess(port, workdir)
            node.process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(workdir),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.nodes.append(node)
        for node in self.nodes:
            _wait(lambda n=node: n.client().ping(), "node up")
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas",
                str(self.replicas_per_master),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_healthy()

    def wait_healthy(self, seconds: float = 30) -> None:
        """Every live node says cluster_state:ok and sees ``masters`` masters with slots."""

        def healthy() -> bool:
            for node in self.live_nodes():
                info = node.client().cluster("info")
                if info.get("cluster_state") != "ok":
                    return False
                if int(info.get("cluster_size", 0)) != self.masters:
                    return False
            return True

        _wait(healthy, "cluster_state ok", seconds)

    def live_nodes(self) -> list[ClusterNodeProcess]:
        return [n for n in self.nodes if n.process and n.process.poll() is None]

    def master_with_replica(self) -> tuple[ClusterNodeProcess, ClusterNodeProcess]:
        """A live master (not the node REDIS_URL names) and its live replica."""
        for master in self.live_nodes()[1:]:
            info = master.client().info("replication")
            if info["role"] != "master":
                continue
            for key, value in info.items():
                if key.startswith("slave") and isinstance(value, dict):
                    replica = next(n for n in self.nodes if n.port == int(value["port"]))
                    return master, replica
        raise RuntimeError("no master with a replica found")

    def stop(self) -> None:
        for node in self.nodes:
            if node.process and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process:
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(timeout=10)


def _node_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (port + 10000, Redis's rule) is free and valid
    too, and clashes with no other node's pair."""
    busy = taken | {port + BUS_OFFSET for port in taken}
    for _ in range(1000):
        port = free_port()
        if port + BUS_OFFSET > 65535 or {port, port + BUS_OFFSET} & busy:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _wait(check, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.exceptions.RedisError, OSError) as err:
            last = err
        time.sleep(0.1)
    raise TimeoutError(f"redis cluster: {what} not reached in {seconds:.0f}s ({last})")
