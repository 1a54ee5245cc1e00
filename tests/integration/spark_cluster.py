"""A real Spark standalone cluster for tests: one master and one worker on loopback,
started with Spark's own launcher (``bin/spark-class``, shipped in the pyspark
package, which is what ``sbin/start-master.sh`` runs too), stopped afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.integration.conftest import free_port


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass
class LocalSparkCluster:
    workdir: Path
    worker_cores: int = 1
    worker_memory: str = "1g"
    master_port: int = field(default_factory=free_port)
    master_ui_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SPARK_HOME=str(spark_home()),
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_LOG_DIR=str(self.workdir / "logs"),
            SPARK_WORKER_DIR=str(self.workdir / "work"),
            SPARK_DAEMON_MEMORY="512m",
        )
        return env

    def _launch(self, name: str, *args: str) -> None:
        if shutil.which("java") is None:
            raise RuntimeError("Spark needs Java 17: apt-get install -y openjdk-17-jre-headless")
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (the child owns it)
        self.processes.append(
            subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), *args],
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._launch(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1",
            "--port", str(self.master_port),
            "--webui-port", str(self.master_ui_port),
        )  # fmt: skip
        self._launch(
            "worker",
            "org.apache.spark.deploy.worker.Worker",
            "--host", "127.0.0.1",
            "--webui-port", str(free_port()),
            "--cores", str(self.worker_cores),
            "--memory", self.worker_memory,
            self.master_url,
        )  # fmt: skip
        self.wait_for_worker()

    def wait_for_worker(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a Spark daemon exited; see {self.workdir}/*.log")
            try:
                state = httpx.get(
                    f"http://127.0.0.1:{self.master_ui_port}/json/",
                    timeout=2,
                    follow_redirects=True,
                ).json()
                if any(w.get("state") == "ALIVE" for w in state.get("workers", [])):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"no Spark worker registered with {self.master_url} in {seconds:.0f}s")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
