"""Servers private to a fault test, so that stopping one breaks nothing else: a PostgreSQL
cluster (initdb in a temporary folder, its own port, run as the ``postgres`` user when we are
root), an ``influxd``, a ``redis-server``, and ``solarfleet serve`` itself as a real uvicorn
process. A missing binary is a skip, which SOLARFLEET_REQUIRE_SERVICES=1 (CI) turns into a
failure."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent / "solarfleet"


def free_port() -> int:
    """A loopback port nobody listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check: object, what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"{what} did not come up within {timeout:.0f}s\n{tail}")


# -- PostgreSQL ----------------------------------------------------------------------------------


def pg_bin() -> Path:
    """PostgreSQL's binaries: SOLARFLEET_TEST_PG_BIN (.ci/run exports it), else the newest
    /usr/lib/postgresql/*/bin; a skip when there are none."""
    chosen = os.environ.get("SOLARFLEET_TEST_PG_BIN")
    candidates = [chosen] if chosen else glob.glob("/usr/lib/postgresql/*/bin")
    candidates.sort(key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts])
    for candidate in reversed(candidates):
        if (Path(candidate) / "pg_ctl").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    pytest.skip("no PostgreSQL binaries (set SOLARFLEET_TEST_PG_BIN to the folder holding pg_ctl)")


class PrivatePostgres:
    """A throw-away cluster on its own port; ``stop``/``start`` as often as a test likes."""

    def __init__(self) -> None:
        self.bin = pg_bin()
        self.as_root = os.geteuid() == 0
        if self.as_root and shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as postgres")
        # Not under pytest's tmp_path: the postgres user must be able to reach the folder.
        self.root = Path(tempfile.mkdtemp(prefix="solarfleet-fault-pg-"))
        if self.as_root:
            shutil.chown(self.root, "postgres")
        self.data = self.root / "data"
        self.log = self.root / "log"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/solarfleet"
        self._run("initdb", "-D", str(self.data), "--locale=C", "-E", "UTF8", "-A", "trust",
                  "-U", "postgres", "--no-sync")  # fmt: skip
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "solarfleet")  # fmt: skip

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            pytest.fail(f"{tool} failed: {result.stdout}{result.stderr}\n{log}")
        return result

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=100"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "start", "-o", options)  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        cmd = [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True).returncode == 0

    def destroy(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


# -- InfluxDB ------------------------------------------------------------------------------------


class PrivateInflux:
    """An ``influxd`` with its data in ``root``; ``kill`` and ``start`` keep the data. ``data``
    and ``http`` are extra lines of those sections of its configuration."""

    def __init__(self, root: Path, *, data: str = "", http: str = "") -> None:
        binary = shutil.which("influxd")
        if binary is None:
            pytest.skip("influxd is not on PATH (Debian package influxdb)")
        self.binary = binary
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "influxd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.config = root / "influxdb.conf"
        self.config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{free_port()}"
[meta]
  dir = "{root}/influx/meta"
[data]
  dir = "{root}/influx/data"
  wal-dir = "{root}/influx/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
  {data}
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  {http}
[monitor]
  store-enabled = false
"""
        )
        self.start()

    def _ping(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=1).status_code == 204
        except httpx.HTTPError:
            return False

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-config", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        _wait_for(self._ping, "influxd", 60, self.log)

    def kill(self) -> None:
        """SIGKILL: no goodbye, connections refused from now on."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing ever answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def destroy(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None


# -- Redis ---------------------------------------------------------------------------------------


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not on PATH (Debian package redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = root / "redis.log"
        self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(root), "--logfile", str(self.log)],
        )  # fmt: skip
        _wait_for(self._ping, "redis-server", 30, self.log)

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing ever answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


# -- solarfleet serve ----------------------------------------------------------------------------


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a server or a CLI run: none of the caller's SOLARFLEET_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLARFLEET_")}
    env.update(
        SOLARFLEET_DATA_DIR=str(data_dir),
        SOLARFLEET_ARGON2_TIME_COST="1",
        SOLARFLEET_ARGON2_MEMORY_KIB="64",
    )
    env.update(extra)
    return env


class Server:
    """``solarfleet serve`` in a process of its own, its output in a file (never a full pipe)."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        if not BIN.exists():
            pytest.skip(f"{BIN} is not installed")
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"serve-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=server_env(data_dir, **env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_for(self._up, "solarfleet serve", 60, self.log)

    def _up(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"solarfleet serve exited:\n{self.log.read_text(errors='replace')}")
        try:
            httpx.get(f"{self.url}/openapi.json", timeout=2)
            return True
        except httpx.TransportError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
