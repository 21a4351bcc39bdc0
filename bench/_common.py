"""What every benchmark script shares: the machine line, the API server subprocess, timing and
percentiles.

The scripts run as ``.venv/bin/python bench/<script>.py``, so this directory is on ``sys.path``
and they import this module as ``_common``. Only the standard library is imported at module
level (``httpx`` where it is used), so worker processes that import it stay quick to start.
"""

from __future__ import annotations

import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

# The settings a benchmark's server must not inherit from the caller's environment: each script
# says which database and hot store its server uses.
SERVER_ENV = ("SOLARFLEET_DATABASE_URL", "SOLARFLEET_INFLUX_URL", "SOLARFLEET_INFLUX_DATABASE")


# -- the caller -------------------------------------------------------------------------------


def api_user(
    session: Any, settings: Any, username: str, permissions: str = "SYSTEM", by: str = "bench"
) -> str:
    """A GLOBAL user who never logs in with a password (flushed, not committed); its token."""
    from solarfleet.auth.models import User
    from solarfleet.auth.tokens import issue_token

    user = User(
        username=username,
        permissions=permissions,
        user_product_visibility="GLOBAL",
        password_hash="!unusable",
        created_by=by,
    )
    session.add(user)
    session.flush()
    token, _ = issue_token(session=session, user=user, settings=settings)
    return token


# -- the machine ------------------------------------------------------------------------------


def load() -> str:
    """The load average, for printing beside figures measured on a shared machine."""
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) {five:.2f} (5 min)"


def machine(extra: str = "") -> str:
    """One line: when, which Python and platform, how many cpus, SQLite, the load."""
    return (
        f"{time.strftime('%Y-%m-%d %H:%M')}  python {platform.python_version()}, "
        f"{platform.platform()}, {os.cpu_count()} cpus, sqlite {sqlite3.sqlite_version}"
        f"{', ' + extra if extra else ''}; {load()}"
    )


# -- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    data_dir: Path,
    port: int,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    cli: bool = False,
) -> subprocess.Popen[bytes]:
    """The API in a subprocess on 127.0.0.1:``port``, its output in ``log``.

    ``cli=True``: ``solarfleet serve`` exactly as an operator starts it (uvicorn, access log on,
    an embedded database upgraded first). Otherwise uvicorn itself with what ``solarfleet serve``
    passes (the factory ``solarfleet.app:app_from_environment``, no server header) plus
    ``--workers`` and the access log off. ``env`` is added to the environment after the
    ``SERVER_ENV`` settings are removed from it; ``SOLARFLEET_DATA_DIR`` is ``data_dir``.
    """
    full_env = dict(os.environ, SOLARFLEET_DATA_DIR=str(data_dir))
    for key in SERVER_ENV:
        full_env.pop(key, None)
    full_env.update(env or {})
    if cli:
        command = Path(sys.executable).with_name("solarfleet")
        if not command.exists():
            raise SystemExit(f"no {command}: run with the project's venv (.venv/bin/python)")
        argv = [str(command), "serve", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers)]  # fmt: skip
    else:
        argv = [
            sys.executable, "-m", "uvicorn", "--factory", "solarfleet.app:app_from_environment",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--log-level", "warning", "--no-server-header",
        ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=full_env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(
    base: str, server: subprocess.Popen[bytes], log: Path | None = None, timeout: float = 120.0
) -> None:
    """Until ``base`` answers HTTP; exits (with the log's last lines) if the server dies."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = ""
            if log is not None and log.exists():
                lines = log.read_text(errors="replace").strip().splitlines()[-15:]
                tail = "; its log ends:\n" + "\n".join(lines)
            raise SystemExit(f"the server exited with status {server.returncode}{tail}")
        try:
            httpx.get(base + "/openapi.json", timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("the server did not start in time")


def stop_server(server: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout`` seconds."""
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def server_errors(log: Path, words: Iterable[str] = ("ERROR", "Traceback")) -> list[str]:
    """The lines of the server's log that contain one of ``words``."""
    if not log.exists():
        return []
    words = tuple(words)
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if any(w in line for w in words)]


# -- timing -----------------------------------------------------------------------------------


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of an ascending list: its element at ``int(n * q)`` (the last
    one at most), the convention of every figure in bench/README.md."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Latencies:
    """Median, p99, mean (in ms) and count of latencies given in seconds."""

    def __init__(self, seconds: Iterable[float]) -> None:
        ordered = sorted(seconds)
        self.n = len(ordered)
        self.median_ms = statistics.median(ordered) * 1000 if ordered else float("nan")
        self.p99_ms = percentile(ordered, 0.99) * 1000
        self.mean_ms = statistics.fmean(ordered) * 1000 if ordered else float("nan")
        self.max_ms = ordered[-1] * 1000 if ordered else float("nan")


def timed(op: Callable[[], Any], n: int) -> list[float]:
    """``op()`` ``n`` times; the latency of each, in seconds."""
    latencies: list[float] = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        op()
        latencies.append(clock() - t0)
    return latencies


def run_for(op: Callable[[], Any], duration: float, max_ops: int) -> tuple[float, list[float]]:
    """``op()`` again and again for ``duration`` seconds (``max_ops`` calls at most); the
    elapsed seconds and the latency of each call."""
    latencies: list[float] = []
    clock = time.perf_counter
    start = clock()
    stop = start + duration
    now = start
    while now < stop and len(latencies) < max_ops:
        t0 = clock()
        op()
        now = clock()
        latencies.append(now - t0)
    return now - start, latencies
