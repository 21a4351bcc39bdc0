"""Virtual units (``solarfleet simulate``): a fleet that behaves as real units do, to watch a
rollout (or the console, or a load test) against.

Each unit, every few (scaled) minutes, tries to reach the API over a link that drops now and
then. When it gets through it fetches ``rc_data``, applies what is pending — most values it
confirms, a share it rejects (it reports running another value) and a share it ignores (never
answers, so they time out) — reports back, and uploads the telemetry it buffered while offline
(late, as real units do). The decision for a value is drawn once and kept, so a unit is
consistent across polls.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol


class Client(Protocol):
    """What a unit needs of an HTTP client (``httpx.Client`` or FastAPI's ``TestClient``)."""

    def get(self, url: str, **kw: Any) -> Any: ...

    def post(self, url: str, **kw: Any) -> Any: ...


@dataclass(frozen=True)
class Behaviour:
    reject_share: float = 0.05  # values reported back as something else
    ignore_share: float = 0.05  # values never answered
    drop_share: float = 0.2  # polls that do not get through


@dataclass
class Stats:
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n


def rejected(value: str) -> str:
    """A value other than ``value``, of the same kind where it can tell."""
    if value in ("True", "False"):
        return "False" if value == "True" else "True"
    try:
        return str(int(value) + 1)
    except ValueError:
        pass
    try:
        return repr(float(value) + 0.5)
    except ValueError:
        return value + "-other"


class VirtualUnit:
    """One unit: its credentials, its behaviour and its telemetry buffer."""

    def __init__(self, imei: str, device_key: str, behaviour: Behaviour, seed: int) -> None:
        self.imei = imei
        self.auth = (imei, device_key)
        self.behaviour = behaviour
        self.rng = random.Random(seed)
        self.decisions: dict[tuple[str, int], str] = {}
        self.buffer: list[tuple[int, float]] = []  # (epoch ms, battery voltage)

    def decide(self, kind: str, row_id: int) -> str:
        key = (kind, row_id)
        if key not in self.decisions:
            draw = self.rng.random()
            b = self.behaviour
            self.decisions[key] = (
                "reject"
                if draw < b.reject_share
                else "ignore"
                if draw < b.reject_share + b.ignore_share
                else "confirm"
            )
        return self.decisions[key]

    def sample(self, epoch_ms: int) -> None:
        self.buffer.append((epoch_ms, round(12.0 + self.rng.random(), 3)))

    def _answer(self, kind: str, values: list[dict[str, Any]], stats: Stats) -> list[dict]:
        out = []
        for v in values:
            decision = self.decide(kind, v[f"{kind}_parameter_id"])
            stats.add(decision)
            if decision == "confirm":
                out.append({"parameter_type_id": v["parameter_type_id"], "value": v["value"]})
            elif decision == "reject":
                out.append(
                    {"parameter_type_id": v["parameter_type_id"], "value": rejected(v["value"])}
                )
        return out

    def poll(self, client: Client, stats: Stats) -> None:
        """One attempt to reach the API: fetch, apply, report, upload the buffer."""
        if self.rng.random() < self.behaviour.drop_share:
            stats.add("dropped")
            return
        got = client.get("/v1/rc_data", auth=self.auth)
        stats.add(f"rc_data GET {got.status_code}")
        if got.status_code != 200:
            return
        data = got.json()["data"]
        report: dict[str, Any] = {}
        product = self._answer("product", data["product_parameters"], stats)
        if product:
            report["product_parameters"] = product
        parts = {
            key: answered
            for key, values in data["part_parameters"].items()
            if (answered := self._answer("part", values, stats))
        }
        if parts:
            report["part_parameters"] = parts
        if report:
            sent = client.post("/v1/rc_data", json=report, auth=self.auth)
            stats.add(f"rc_data POST {sent.status_code}")
        if self.buffer:
            body = {
                "measurement": "telemetry",
                "tags": {"source": "simulate"},
                "fields": {"battery_voltage": [[t, v] for t, v in self.buffer]},
            }
            up = client.post("/v1/rm_data", json=body, auth=self.auth)
            stats.add(f"rm_data POST {up.status_code}")
            if up.status_code == 200:
                stats.add("readings", len(self.buffer))
                self.buffer.clear()


def run(
    units: list[VirtualUnit],
    client: Client,
    *,
    duration: float,
    poll_seconds: float,
    threads: int = 8,
    on_round: Any = None,
) -> Stats:
    """Poll every unit about every ``poll_seconds`` (jittered) for ``duration`` seconds, a
    reading buffered per unit every tenth of that; the counts of what happened."""
    stats = Stats()
    rng = random.Random(0)
    start = time.monotonic()
    due = {u.imei: start + rng.uniform(0, poll_seconds) for u in units}
    next_sample = start
    with ThreadPoolExecutor(threads) as pool:
        while (now := time.monotonic()) < start + duration:
            if now >= next_sample:
                epoch_ms = int(time.time() * 1000)
                for u in units:
                    u.sample(epoch_ms)
                next_sample = now + poll_seconds / 10
            ready = [u for u in units if due[u.imei] <= now]
            for u in ready:
                due[u.imei] = now + poll_seconds * rng.uniform(0.8, 1.2)
            list(pool.map(lambda u: _safe_poll(u, client, stats), ready))
            if on_round is not None:
                on_round(stats)
            time.sleep(min(0.05, max(0.0, min(due.values()) - time.monotonic())))
    return stats


def _safe_poll(unit: VirtualUnit, client: Client, stats: Stats) -> None:
    try:
        unit.poll(client, stats)
    except Exception as exc:  # noqa: BLE001 - a unit whose link failed tries again later
        stats.add(f"link error {type(exc).__name__}")
