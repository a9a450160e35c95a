"""A yield study on Dask: tasks of many chips, results streamed to a parquet table, reruns resume.

:func:`run` connects to a scheduler (``tcp://HOST:PORT``) or starts a ``LocalCluster`` (one single-threaded
worker process per core), submits tasks of chips (:func:`tapmesh.yield_study.run_chunk`), and as each task
finishes appends its rows to ``OUT/chips/`` as one parquet part written atomically. A rerun into the same
folder skips the chips already there, so a study killed midway loses at most its running tasks; a worker
lost midway has its tasks rerun by Dask and every chip lands once. Seeds are per chip
(:mod:`tapmesh.yield_study`), so the table does not depend on the number of workers. ``docs/yield.md``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from tapmesh.calibration.surrogate import ErrorModel, load_error_models, save_error_models
from tapmesh.circuits.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from tapmesh.yield_study import Study, YieldStudyError, error_model_chip, pool_error_models, run_chunk, yield_at

TABLE = "yield.parquet"
PARTS = "chips"
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
"""Environment of LocalCluster workers: one thread each, so that one worker per core does not oversubscribe."""


class SchedulerError(YieldStudyError):
    """The Dask scheduler given with ``--scheduler`` cannot be reached."""


def connect(scheduler: str | None = None, workers: int | None = None, timeout_s: float = 10.0):
    """A ``distributed.Client``: to ``scheduler`` (``tcp://HOST:PORT``), or to a new ``LocalCluster`` of
    ``workers`` processes (default: one per core), single-threaded. Raises :class:`SchedulerError`."""
    from distributed import Client, LocalCluster

    if scheduler:
        if "://" not in scheduler:
            raise SchedulerError(f"--scheduler must look like tcp://HOST:PORT, got {scheduler!r}")
        try:
            return Client(scheduler, timeout=f"{timeout_s}s")
        except (OSError, TimeoutError) as error:
            raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {error}".splitlines()[0]) from None
    workers = int(workers or os.cpu_count() or 1)
    if workers < 1:
        raise YieldStudyError(f"workers must be at least 1, got {workers}")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           env=WORKER_ENV, silence_logs=logging.ERROR)
    return Client(cluster)


def read_table(out: str | os.PathLike):
    """Every chip recorded in ``out`` so far (the parts of a running study, or its final table), as a
    pandas DataFrame sorted by (n, sigma_delta, chip); duplicates (a part written twice) are dropped."""
    import pandas as pd

    out = Path(out)
    parts = sorted((out / PARTS).glob("part-*.parquet")) if (out / PARTS).is_dir() else []
    frames = [pd.read_parquet(p) for p in parts]
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    table = table.drop_duplicates(subset=["n", "sigma_delta", "chip"], keep="first")
    return table.sort_values(["n", "sigma_delta", "chip"]).reset_index(drop=True)


def _write_part(out: Path, rows: list[dict], name: str) -> Path:
    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buffer, index=False)
    return atomic_write_bytes(out / PARTS / f"part-{name}.parquet", buffer.getvalue())


def _check_folder(out: Path, study: Study) -> None:
    """``out`` may hold an earlier run of this study (same fingerprint), nothing of another."""
    record = out / "study.json"
    if record.exists():
        previous = json.loads(record.read_text()).get("fingerprint")
        if previous != json.loads(json.dumps(study.fingerprint, default=str)):
            raise YieldStudyError(f"--out {out} holds a study with other settings ({record}); use another folder")


def _chunks(keys: list, size: int) -> list[list]:
    by_n: dict[int, list] = {}
    for key in keys:
        by_n.setdefault(key[0], []).append(key)
    return [group[i:i + size] for group in by_n.values() for i in range(0, len(group), size)]


def _error_models(client, study: Study, out: Path, given: dict | None, echo) -> dict[int, ErrorModel]:
    """The fast mode's error model per mesh size: given, saved in ``out``, or measured now on the cluster
    (``study.error_chips`` full calibrations per size, one task each) and saved."""
    path = out / "error_model.json"
    models = dict(load_error_models(path.read_text())) if path.exists() else {}
    models.update(given or {})
    missing = [n for n in study.ns if n not in models]
    if missing:
        echo(f"measuring the calibration error model: {study.error_chips} full calibrations at n = {missing}")
        futures = {n: [client.submit(error_model_chip, study, n, i, pure=False) for i in range(study.error_chips)]
                   for n in missing}
        for n, fs in futures.items():
            models[n], failed = pool_error_models(n, (f.result() for f in fs))
            if failed:
                echo(f"n = {n}: {failed} of {len(fs)} error-model calibrations failed their quality verdict and "
                     "were left out of the error model")
    atomic_write_text(path, save_error_models(models))
    return models


def run(study: Study, out: str | os.PathLike, scheduler: str | None = None, workers: int | None = None,
        chunk: int | None = None, error_models: dict[int, ErrorModel] | None = None, plots: bool = True,
        echo: Callable[[str], None] = print, client=None, timeout_s: float = 10.0) -> dict:
    """Run ``study`` into the folder ``out``; returns the summary (also ``out/yield_summary.json``).

    Args:
        study: what to fabricate and score.
        out: folder of the table (``chips/part-*.parquet`` while running, ``yield.parquet`` at the end),
            ``study.json``, ``error_model.json`` (fast mode), plots and the summary.
        scheduler: ``tcp://HOST:PORT`` of a running Dask scheduler; default a new LocalCluster.
        workers: LocalCluster workers (default one per core).
        chunk: chips per task (default: about four tasks per worker, at most 25 chips each).
        error_models: the fast mode's error models by n (default: from ``out``, else measured).
        plots: write the PNGs (:mod:`tapmesh.yield_plots`).
        echo: where progress lines go.
        client: an existing ``distributed.Client`` to use (then ``scheduler``/``workers`` are ignored).
        timeout_s: how long to try reaching ``scheduler``, s.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    if out.exists():
        _check_folder(out, study)
    own = client is None
    client = connect(scheduler, workers, timeout_s) if own else client  # before any file is written
    try:
        start = time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "study.json", {"fingerprint": json.loads(json.dumps(study.fingerprint, default=str)),
                                                "ns": study.ns, "sigmas": study.sigmas, "chips": study.chips})
        link = getattr(client, "dashboard_link", None)
        n_workers = len(client.scheduler_info().get("workers", {}))
        echo(f"dask: {n_workers} workers at {client.scheduler.address}; dashboard {link or 'unavailable (install bokeh)'}")
        done = read_table(out)
        done_keys = set() if done.empty else set(zip(done["n"], done["sigma_delta"], done["chip"]))
        todo = [key for key in study.keys() if key not in done_keys]
        models = _error_models(client, study, out, error_models, echo) if study.mode == "fast" and todo else {}
        size = chunk or max(1, min(25, math.ceil(len(todo) / (4 * max(n_workers, 1)))))
        chunks = _chunks(todo, size)
        echo(f"{len(todo)} chips to score in {len(chunks)} tasks ({len(study.keys()) - len(todo)} already in {out})")
        scored = _stream(client, study, out, chunks, models, done_keys, echo)
        seconds = time.perf_counter() - start
        return finish(study, out, scored=scored, seconds=seconds, workers=n_workers, dashboard=link, plots=plots)
    finally:
        if own:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()


def _stream(client, study, out: Path, chunks, models, done_keys: set, echo) -> int:
    """Submit the tasks and append each task's rows as it finishes; returns the chips written."""
    from distributed import as_completed

    futures = {client.submit(run_chunk, study, keys, models, pure=False): keys for keys in chunks}
    scored = 0
    for future in as_completed(futures):
        rows = [r for r in future.result() if (r["n"], r["sigma_delta"], r["chip"]) not in done_keys]
        if rows:
            keys = futures[future]
            _write_part(out, rows, f"n{keys[0][0]}-s{keys[0][1]:g}-c{keys[0][2]}-{keys[-1][2]}-{future.key[-8:]}")
            done_keys.update((r["n"], r["sigma_delta"], r["chip"]) for r in rows)
            scored += len(rows)
        echo(f"  {scored}/{sum(len(c) for c in chunks)} chips scored")
    return scored


def finish(study: Study, out: Path, scored: int = 0, seconds: float = 0.0, workers: int = 0,
           dashboard: str | None = None, plots: bool = True) -> dict:
    """Consolidate the parts into ``yield.parquet``, plot, and write the summary of the study's chips."""
    table = read_table(out)
    wanted = set(study.keys())
    if not table.empty:
        table = table[[k in wanted for k in zip(table["n"], table["sigma_delta"], table["chip"])]]
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    atomic_write_bytes(out / TABLE, buffer.getvalue())
    groups = []
    for (n, sigma), group in (table.groupby(["n", "sigma_delta"]) if not table.empty else []):
        groups.append({"n": int(n), "sigma_delta": float(sigma), "chips": int(len(group)),
                       "yield": yield_at(group["f_mean"], study.spec),
                       "yield_uncorrected": yield_at(group["f_uncorrected"], study.spec),
                       "f_median": float(np.median(group["f_mean"])), "f_p05": float(np.quantile(group["f_mean"], 0.05)),
                       "delta_rms_measured": float(np.sqrt(np.mean(group["delta_rms"] ** 2))),
                       "verdicts_failed": int((group["verdict"] == "failed").sum()) if "verdict" in group else 0})
    files = [str(out / TABLE)]
    if plots and not table.empty:
        from tapmesh import yield_plots

        files += [str(p) for p in yield_plots.plot_all(table, study.spec, out, radius_mm=study.wafer.diameter_mm / 2,
                                                   die_mm=tuple(study.wafer.die_mm))]
    summary = {
        "chips_scored": int(len(table)), "chips_this_run": int(scored), "spec": study.spec, "mode": study.mode,
        "variation": study.variation, "seed": study.seed,
        "yield": yield_at(table["f_mean"], study.spec) if not table.empty else float("nan"),
        "groups": groups, "workers": workers, "dashboard": dashboard, "seconds": round(seconds, 2),
        "chips_per_second": round(scored / seconds, 4) if seconds > 0 else None, "files": files,
    }
    atomic_write_json(out / "yield_summary.json", summary)
    return summary
