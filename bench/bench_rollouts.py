"""Benchmark: creating a rollout over 100,000 units, and advancing one phase of 10,000.

The requirement (issue 12): *creating and starting a rollout over 100,000 units and advancing a
phase of 10,000, each against the same rows inserted with plain SQL in the same run (aim: at
most 3x).* Speed is reported, never asserted: the exit status is 0 whatever the figures.

    .venv/bin/python bench/bench_rollouts.py                       # SQLite, ~1 minute
    .venv/bin/python bench/bench_rollouts.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
    .venv/bin/python bench/bench_rollouts.py --units 20000 --phase 2000 --rounds 2

The PostgreSQL database given is emptied (``DROP SCHEMA public CASCADE``).

What it measures, in interleaved rounds, each in a transaction rolled back afterwards (so that
every round starts from the same rows):

* ``create``: :func:`solarfleet.rollouts.service.create_rollout` with ``q`` matching every unit
  and phases of ``--phase`` units: the value checked, the targets resolved and numbered into
  phases, ``targets`` rows inserted (``INSERT … SELECT``), the created event. Baseline: the
  same rollout row and the same target rows (computed in Python beforehand) inserted with plain
  SQL by the DBAPI cursor (``executemany``).
* ``advance``: one :func:`~solarfleet.rollouts.advance.advance` step on a created rollout: the
  rollout locked, its pending targets synced, phase 1 begun (units locked on PostgreSQL, scope
  and supersede checks, older pending values expired, ``--phase`` parameter rows inserted,
  targets linked to them), counts recounted. Baseline: the same parameter rows inserted and the
  same target rows updated (state, set_at, the new row's id) with plain SQL ``executemany``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import machine
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine

from solarfleet.auth.principal import SYSTEM_PRINCIPAL
from solarfleet.db import make_engine, make_sessionmaker, utcnow, write_session
from solarfleet.fleet.models import ParameterType, Product, ProductType
from solarfleet.resources import REGISTRY
from solarfleet.rollouts.advance import AdvanceReport, _step
from solarfleet.rollouts.models import ParameterRollout
from solarfleet.rollouts.service import create_rollout
from solarfleet.schema import upgrade


def build(engine: Engine, units: int) -> tuple[int, list[str]]:
    """An empty schema, one parameter type, one product type, ``units`` products."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    imeis = [f"{350000000000000 + i}" for i in range(units)]
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(ParameterType.__table__),
            [{"parameter_type_id": 1, "name": "max_load_watts", "data_type": "int",
              "validation_rules": {"min": 0, "max": 500}, "repeatable": False, "setting": True,
              "created_at": now}],
        )  # fmt: skip
        conn.execute(
            insert(ProductType.__table__),
            [{"product_type_id": 1, "name": "BB17", "parameter_types": [1], "created_at": now}],
        )
        for start in range(0, units, 20000):
            conn.execute(
                insert(Product.__table__),
                [{"product_imei": imei, "product_type_id": 1, "device_key": "k" * 24,
                  "created_at": now} for imei in imeis[start:start + 20000]],
            )  # fmt: skip
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return 1, imeis


def _raw(engine: Engine, work: Callable[[Any], None]) -> float:
    """``work(dbapi_cursor)`` in a transaction rolled back; seconds."""
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("BEGIN IMMEDIATE")
        t0 = time.perf_counter()
        work(cur)
        seconds = time.perf_counter() - t0
        conn.rollback()
        return seconds
    finally:
        conn.close()


def _placeholders(engine: Engine, n: int) -> str:
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    return ", ".join([mark] * n)


def raw_create(engine: Engine, imeis: list[str], phase: int) -> float:
    now = utcnow()
    p = _placeholders(engine, 4)
    rows = [(10**6, imei, i // phase + 1, "queued") for i, imei in enumerate(imeis)]

    def work(cur: Any) -> None:
        cur.execute(
            "INSERT INTO parameter_rollouts (parameter_rollout_id, scope, q, parameter_type_id, "
            "value, wait_seconds, confirm_timeout_seconds, abort_failure_percent, "
            "abort_min_units, state, targets, phases_total, phase, baseline_failed, "
            "baseline_tried, queued, pending, confirmed, failed, superseded, out_of_scope, "
            f"created_at, created_by) VALUES ({_placeholders(engine, 23)})",
            (10**6, "GLOBAL", "{}", 1, "150", 0, 86400, 10.0, 10, "running", len(imeis),
             -(-len(imeis) // phase), 1, 0, 0, len(imeis), 0, 0, 0, 0, 0, now, "bench"),
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO parameter_rollout_targets (parameter_rollout_id, product_imei, phase, "
            f"state) VALUES ({p})",
            rows,
        )

    return _raw(engine, work)


def api_create(sessions: Any, imeis: list[str], phase: int, *, keep: bool = False) -> float:
    with write_session(sessions) as session:
        t0 = time.perf_counter()
        create_rollout(
            session=session,
            registry=REGISTRY,
            principal=SYSTEM_PRINCIPAL,
            q={"filters": [{"name": "product_type_id", "op": "==", "val": 1}]},
            parameter_type_id=1,
            value=150,
            phases=[{"batch": phase}] * (len(imeis) // phase),
            wait_seconds=0,
        )
        session.flush()
        seconds = time.perf_counter() - t0
        if keep:
            session.commit()
        else:
            session.rollback()
    return seconds


def raw_advance(engine: Engine, rollout_id: int, phase: int) -> float:
    with engine.connect() as conn:
        targets = conn.execute(
            text(
                "SELECT parameter_rollout_target_id, product_imei FROM parameter_rollout_targets "
                "WHERE parameter_rollout_id = :r AND phase = 1 ORDER BY parameter_rollout_target_id"
            ),
            {"r": rollout_id},
        ).all()
        first_id = (conn.scalar(text("SELECT max(product_parameter_id) FROM product_parameters"))
                    or 0) + 1  # fmt: skip
    assert len(targets) == phase
    now = utcnow()
    p5 = _placeholders(engine, 7)
    p4 = _placeholders(engine, 1)
    rows = [(first_id + i, imei, 1, "150", "pending", now, f"rollout:{rollout_id}")
            for i, (_tid, imei) in enumerate(targets)]  # fmt: skip
    links = [("pending", now, first_id + i, tid) for i, (tid, _imei) in enumerate(targets)]

    def work(cur: Any) -> None:
        cur.executemany(
            "INSERT INTO product_parameters (product_parameter_id, product_imei, "
            f"parameter_type_id, value, status, created_at, created_by) VALUES ({p5})",
            rows,
        )
        cur.executemany(
            f"UPDATE parameter_rollout_targets SET state = {p4}, set_at = {p4}, "
            f"product_parameter_id = {p4} WHERE parameter_rollout_target_id = {p4}",
            links,
        )

    return _raw(engine, work)


def api_advance(sessions: Any, rollout_id: int) -> float:
    report = AdvanceReport()
    with write_session(sessions) as session:
        t0 = time.perf_counter()
        rollout = session.scalars(
            select(ParameterRollout)
            .where(ParameterRollout.parameter_rollout_id == rollout_id)
            .with_for_update(skip_locked=True)
        ).one()
        _step(session, rollout, utcnow(), report, lambda _p: None)
        session.flush()
        seconds = time.perf_counter() - t0
        session.rollback()
    assert report.units_set > 0
    return seconds


def measure(url: str, units: int, phase: int, rounds: int) -> None:
    engine = make_engine(url)
    t0 = time.perf_counter()
    _ptype, imeis = build(engine, units)
    print(f"{engine.dialect.name}: {units:,} units loaded in {time.perf_counter() - t0:.1f}s")
    sessions = make_sessionmaker(engine)
    figures: dict[str, list[float]] = {k: [] for k in ("raw create", "create", "raw advance",
                                                       "advance")}  # fmt: skip
    api_create(sessions, imeis, phase, keep=True)  # the rollout that advance measures
    with sessions() as session:
        rollout_id = session.scalar(select(ParameterRollout.parameter_rollout_id))
    for _ in range(rounds):
        figures["raw create"].append(raw_create(engine, imeis, phase))
        figures["create"].append(api_create(sessions, imeis, phase))
        figures["raw advance"].append(raw_advance(engine, rollout_id, phase))
        figures["advance"].append(api_advance(sessions, rollout_id))
    for name in ("create", "advance"):
        raw = statistics.median(figures[f"raw {name}"])
        ours = statistics.median(figures[name])
        what = f"{units:,} targets" if name == "create" else f"a phase of {phase:,}"
        print(
            f"  {name:8s} {what:>18s}: {ours * 1000:8.0f} ms   plain SQL {raw * 1000:8.0f} ms"
            f"   ratio {ours / raw:4.2f}x   (rounds: "
            + ", ".join(
                f"{a * 1000:.0f}/{b * 1000:.0f}"
                for a, b in zip(figures[name], figures[f"raw {name}"], strict=True)
            )  # fmt: skip
            + ")"
        )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--phase", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-url", help="also on this PostgreSQL database (it is emptied)")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    print(machine())
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            measure(f"sqlite:///{Path(tmp) / 'bench.sqlite'}", args.units, args.phase, args.rounds)
    if args.pg_url:
        measure(args.pg_url, args.units, args.phase, args.rounds)


if __name__ == "__main__":
    main()
