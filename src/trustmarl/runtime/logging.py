"""Run-folder logs: ``metrics.csv`` (one row per seed and update), ``trust_region.csv`` (one row per seed,
update and epoch) and TensorBoard scalars (seed means), from a chunk of metrics ``[S, n, ...]``.

Rows logged after the last checkpoint are dropped on resume (:func:`_truncate_csv`), so a resumed run has
no duplicated updates.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

TR_PREFIX = "tr/"


class RunLogger:
    """Writes metrics.csv, trust_region.csv and TensorBoard scalars from chunk metrics [S, n, ...]."""

    def __init__(self, run_dir: Path, num_agents: int, steps_per_update: int, resume_from: int | None = None):
        self.dir = run_dir
        self.num_agents = num_agents
        self.steps_per_update = steps_per_update
        self.metrics_path = run_dir / "metrics.csv"
        self.tr_path = run_dir / "trust_region.csv"
        if resume_from is not None:
            for path in (self.metrics_path, self.tr_path):
                _truncate_csv(path, resume_from)
        self._fields: dict[Path, list[str]] = {}
        for path in (self.metrics_path, self.tr_path):
            if path.exists():
                with open(path, newline="") as fh:
                    header = next(csv.reader(fh), None)
                if header:
                    self._fields[path] = header
        from tensorboardX import SummaryWriter
        self.tb = SummaryWriter(str(run_dir / "tb"))
        self.last_return = float("nan")
        self.last_win = float("nan")

    def _write(self, path: Path, rows: list[dict]):
        if not rows:
            return
        fields = self._fields.get(path)
        new = fields is None
        if new:
            fields = list(rows[0].keys())
            self._fields[path] = fields
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            for r in rows:
                w.writerow({k: _fmt(r.get(k, float("nan"))) for k in fields})

    def log_chunk(self, metrics: dict, first_update: int):
        """``metrics``: dict of arrays [S, n, ...] for updates ``first_update .. first_update+n-1``."""
        m = {k: np.asarray(v) for k, v in metrics.items()}
        S, n = next(iter(m.values())).shape[:2]
        rows, tr_rows = [], []
        for u in range(n):
            update = first_update + u + 1
            for s in range(S):
                row = {"seed": s, "update": update, "env_steps": update * self.steps_per_update}
                for k, v in m.items():
                    if k.startswith(TR_PREFIX):
                        continue
                    _flatten_into(row, k, v[s, u])
                if any(k.startswith(TR_PREFIX) for k in m):
                    epochs = m[TR_PREFIX + "sum_tv"].shape[2]
                    for e in range(epochs):
                        tr = {"seed": s, "update": update, "epoch": e + 1, "env_steps": row["env_steps"]}
                        for k, v in m.items():
                            if k.startswith(TR_PREFIX):
                                _flatten_into(tr, _tr_name(k[len(TR_PREFIX):]), v[s, u, e])
                        tr["ratio_min"] = float(np.nanmin(m[TR_PREFIX + "ratio_min"][s, u, e]))
                        tr["ratio_max"] = float(np.nanmax(m[TR_PREFIX + "ratio_max"][s, u, e]))
                        tr_rows.append(tr)
                    last = tr_rows[-1]
                    for key in ("sum_tv", "joint_tv_bound", "joint_tv_coupling", "joint_tv_mc", "joint_kl"):
                        row[key] = last[key]
                    for i in range(self.num_agents):
                        row[f"tv_{i}"] = last[f"tv_{i}"]
                rows.append(row)
            means = {k: float(np.nanmean(v[:, u])) for k, v in m.items()
                     if v.ndim == 2 and not k.startswith(TR_PREFIX) and np.isfinite(v[:, u]).any()}
            for k, val in means.items():
                self.tb.add_scalar(k, val, update * self.steps_per_update)
            if TR_PREFIX + "sum_tv" in m:
                self.tb.add_scalar("trust_region/sum_tv", float(np.nanmean(m[TR_PREFIX + "sum_tv"][:, u, -1])),
                                   update * self.steps_per_update)
            if math.isfinite(means.get("return_mean", float("nan"))):
                self.last_return = means["return_mean"]
            if math.isfinite(means.get("win_rate", float("nan"))):
                self.last_win = means["win_rate"]
        self._write(self.metrics_path, rows)
        self._write(self.tr_path, tr_rows)
        self.tb.flush()

    def close(self):
        self.tb.close()


def _tr_name(k: str) -> str:
    return {"tv_mean": "tv", "kl_mean": "kl"}.get(k, k)


def _flatten_into(row: dict, key: str, value):
    value = np.asarray(value)
    if value.ndim == 0:
        row[key] = float(value)
    else:
        for i, x in enumerate(value.reshape(-1)):
            row[f"{key}_{i}"] = float(x)


def _fmt(x):
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.6g}"
    return x


def _truncate_csv(path: Path, last_update: int):
    """Keep only rows with update <= last_update (rows logged after the checkpoint are replayed)."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    col = header.index("update")
    kept = [r for r in body if r and int(float(r[col])) <= last_update]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(kept)
    os.replace(tmp, path)
