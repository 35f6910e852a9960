"""Reading trainer run folders: config and CSV tables, grouping runs by config values, curve labels.

Run-folder contract (written by the run loop, ``trustmarl.runtime``)::

    RUN/config.json        resolved config; at least "algo", "env", "clip_eps",
                           "ratio" ("independent" | "joint"), "seed", "num_agents"
    RUN/metrics.csv        one row per update: update, env_steps, return_mean, win_rate (may be
                           empty/NaN), sum_tv, joint_tv_bound, joint_kl, and per agent i
                           ratio_min_<i>, ratio_max_<i>, tv_<i>
    RUN/trust_region.csv   one row per (update, epoch): update, epoch, env_steps, ratio_min,
                           ratio_max (over agents), sum_tv, joint_tv_bound, joint_tv_mc, joint_kl,
                           and per agent ratio_min_<i>, ratio_max_<i>, tv_<i>, kl_<i>

An optional ``seed`` column (the trainer vmaps seeds inside one run and writes a row per seed)
splits a table into one curve per seed.  ``find_runs`` takes run folders, or folders searched
recursively for ``config.json``; runs are grouped by config values and seeds averaged (every seed of
every run folder is one sample of the mean +- std, ``_aggregate``).  Runs that differ in an
``IDENTITY_KEYS`` value (algo, task, num_agents, ratio, clip, clip_kind) are never averaged together;
curve labels show only the grouping keys whose values differ between the runs (inside a panel:
``_varying_in_panels``).  ``Run.get`` resolves two virtual keys: "task" (the SMAX map, else the env)
and "clip" (the clip value in effect: clip_eps_effective / clip_eps, or "none" with no_clip).  Bad
input (no runs, a missing file or column, no rows) raises ``PlotInputError`` (a ``ValueError``) with
a one-line message.

No matplotlib here: the figures are in :mod:`trustmarl.analysis.figures`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PlotInputError",
    "Run",
    "load_run",
    "find_runs",
    "curve_samples",
    "varying_keys",
    "NON_GROUPING_KEYS",
]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
TRUST_REGION_FILE = "trust_region.csv"
_TABLE_FILES = {"metrics": METRICS_FILE, "trust_region": TRUST_REGION_FILE}
_LABELS = {
    "clip_eps": "clip",
    "clip": "clip",
    "clip_kind": "",
    "map": "",
    "task": "",
    "num_agents": "N",
    "update_epochs": "epochs",
    "ratio": "ratio",
    "algo": "",
    "env": "",
    "return_mean": "return",
    "win_rate": "win rate",
    "sum_tv": r"$\sum_i \mathbb{E}_s D_{TV}(\pi_i, \tilde\pi_i)$",
    "joint_tv_bound": r"joint TV union bound $\min(1, \sum_i D_{TV})$",
    "joint_tv_coupling": r"joint TV coupling bound $1 - \prod_i (1 - D_{TV})$",
    "joint_tv_mc": "joint TV (one-sample estimate)",
    "joint_kl": "joint KL",
    "env_steps": "environment steps",
}


class PlotInputError(ValueError):
    """Bad plotting input: no runs, a missing file or column, an empty table."""


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def _to_float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise PlotInputError(f"{path}: file missing")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise PlotInputError(f"{path}: empty file (no header)")
        names = [n.strip() for n in reader.fieldnames]
        cols: dict[str, list[float]] = {n: [] for n in names}
        for row in reader:
            for raw, name in zip(reader.fieldnames, names):
                cols[name].append(_to_float(row.get(raw, "")))
    table = {n: np.asarray(v, dtype=float) for n, v in cols.items()}
    if not len(next(iter(table.values()))):
        raise PlotInputError(f"{path}: no rows")
    return table


@dataclass
class Run:
    """One run folder: its config, and its CSV tables loaded on first use."""

    path: Path
    config: dict[str, Any]
    _tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        """Config value; dotted keys reach into nested sections ("ppo.clip_eps").

        Virtual keys: ``"task"`` is the SMAX map for SMAX runs, else ``env``; ``"clip"`` is the clip value actually used: ``"none"`` when ``no_clip`` is
        set, else ``clip_eps_effective`` when the config records it (``clip_alpha / N``), else
        ``clip_eps``."""
        if key == "task":
            env, smax_map = self.get("env", default), self.get("map")
            return smax_map if smax_map and "smax" in str(env).lower() else env
        if key == "clip":
            if self.get("no_clip"):
                return "none"
            eff = self.get("clip_eps_effective")
            return eff if eff is not None else self.get("clip_eps", default)
        value: Any = self.config
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value

    def table(self, name: str) -> dict[str, np.ndarray]:
        """``"metrics"`` or ``"trust_region"`` as {column: float array} (empty cells are NaN)."""
        if name not in _TABLE_FILES:
            raise PlotInputError(f"unknown table {name!r}; allowed: {', '.join(_TABLE_FILES)}")
        if name not in self._tables:
            self._tables[name] = _read_csv(self.path / _TABLE_FILES[name])
        return self._tables[name]

    def column(self, name: str, col: str) -> np.ndarray:
        tab = self.table(name)
        if col not in tab:
            raise PlotInputError(f"{self.path / _TABLE_FILES[name]}: missing column {col!r}")
        return tab[col]

    def has_data(self, name: str, col: str) -> bool:
        """True if the table exists, has ``col`` and at least one finite value in it."""
        try:
            return bool(np.isfinite(self.column(name, col)).any())
        except PlotInputError:
            return False

    def agent_columns(self, name: str, prefix: str) -> list[str]:
        """Per-agent columns ``<prefix>_<i>`` sorted by agent index."""
        pat = re.compile(rf"^{re.escape(prefix)}_(\d+)$")
        found = [(int(m.group(1)), c) for c in self.table(name) if (m := pat.match(c))]
        return [c for _, c in sorted(found)]


def load_run(path: str | Path) -> Run:
    """Read ``path/config.json``; the CSV tables are read when first needed."""
    path = Path(path)
    cfg_path = path / CONFIG_FILE
    if not path.is_dir():
        raise PlotInputError(f"{path}: no such run directory")
    if not cfg_path.is_file():
        raise PlotInputError(f"{cfg_path}: file missing")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise PlotInputError(f"{cfg_path}: invalid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(config, dict):
        raise PlotInputError(f"{cfg_path}: expected a JSON object, got {type(config).__name__}")
    return Run(path=path, config=config)


def find_runs(runs: str | Path | Iterable[str | Path]) -> list[Run]:
    """Load run folders.  Each entry is a run folder (has config.json) or a folder searched
    recursively for run folders.  Raises PlotInputError when nothing is found."""
    if isinstance(runs, (str, Path)):
        runs = [runs]
    entries = list(runs)
    if not entries:
        raise PlotInputError("no run directories given")
    found: list[Run] = []
    for entry in entries:
        if isinstance(entry, Run):
            found.append(entry)
            continue
        path = Path(entry)
        if not path.exists():
            raise PlotInputError(f"{path}: no such run directory")
        looks_like_run = any((path / f).is_file() for f in (CONFIG_FILE, METRICS_FILE, TRUST_REGION_FILE))
        if looks_like_run or not path.is_dir():
            found.append(load_run(path))
            continue
        nested = sorted({p.parent for p in path.rglob(CONFIG_FILE)})
        if not nested:
            raise PlotInputError(f"{path}: no run folder (no {CONFIG_FILE}) found")
        found.extend(load_run(p) for p in nested)
    return found


# --------------------------------------------------------------------------------------------
# grouping and aggregation
# --------------------------------------------------------------------------------------------


def _sort_key(value: Any):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _group(runs: Sequence[Run], keys: Sequence[str]) -> list[tuple[tuple, list[Run]]]:
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(_hashable(run.get(k)) for k in keys), []).append(run)
    return sorted(groups.items(), key=lambda kv: tuple(_sort_key(v) for v in kv[0]))


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


# Config keys that identify an experiment (everything but the seed): runs that differ in one of
# them are never averaged together, even when the caller's group_by omits it.
IDENTITY_KEYS = ("algo", "task", "num_agents", "ratio", "clip", "clip_kind")


def _curve_keys(runs: Sequence[Run], group_by: Sequence[str], facet=None) -> tuple[str, ...]:
    extra = [
        k for k in IDENTITY_KEYS
        if k not in group_by and k not in _facet_keys(facet) and k in _varying(runs, IDENTITY_KEYS)
    ]
    return tuple(group_by) + tuple(extra)


def _varying(runs: Sequence[Run], keys: Sequence[str]) -> list[str]:
    return [k for k in keys if len({_hashable(r.get(k)) for r in runs}) > 1]


def _label(keys: Sequence[str], values: Sequence[Any], show: Sequence[str]) -> str:
    parts = []
    for k, v in zip(keys, values):
        if k in show:
            name = _LABELS.get(k, k)
            parts.append(f"{name} {v}" if name else f"{v}")
    return ", ".join(parts)


def _curve_label(keys, values, show, n_seeds: int) -> str:
    base = _label(keys, values, show) or _label(keys[:1], values[:1], keys[:1]) or "runs"
    return f"{base} (n={n_seeds})" if n_seeds > 1 else base


def _xy(run: Run, table: str, x_col: str, y_col: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The run's y(x) curves, one per value of the table's ``seed`` column (the trainer vmaps
    seeds and writes one row per (seed, update)); one curve when there is no such column."""
    x, y = run.column(table, x_col), run.column(table, y_col)
    seeds = run.table(table).get("seed")
    if seeds is None or not np.isfinite(seeds).any():
        groups = [np.ones_like(x, dtype=bool)]
    else:
        groups = [seeds == s for s in np.unique(seeds[np.isfinite(seeds)])]
    curves = []
    for sel in groups:
        ok = sel & np.isfinite(x) & np.isfinite(y)
        xs, ys = x[ok], y[ok]
        order = np.argsort(xs, kind="stable")
        curves.append((xs[order], ys[order]))
    return curves


def _n_seeds(runs: Sequence[Run], table: str) -> int:
    """Number of seed curves in ``runs`` (distinct values of a ``seed`` column, else 1 per run)."""
    total = 0
    for run in runs:
        seeds = run.table(table).get("seed")
        finite = seeds[np.isfinite(seeds)] if seeds is not None else np.array([])
        total += max(1, len(np.unique(finite)))
    return total


def _aggregate(runs: Sequence[Run], table: str, x_col: str, y_col: str):
    """Mean and std over seeds (every seed of every run) of y(x); curves on different x grids are
    interpolated onto the densest grid restricted to the x-range all of them cover.
    Returns (x, mean, std, number of curves), or None when no curve has data."""
    samples = curve_samples(runs, table, x_col, y_col)
    if samples is None:
        return None
    grid, ys = samples
    return grid, ys.mean(0), ys.std(0), len(ys)


def curve_samples(runs: Sequence[Run], table: str, x_col: str, y_col: str):
    """Every seed curve y(x) of ``runs`` (each seed of each run folder) on one x grid: ``(x, ys)`` with
    ``ys`` of shape ``[curves, len(x)]``, or None when no curve has data. Curves on different x grids are
    interpolated onto the densest grid restricted to the x-range all of them cover; when they share no
    range, the longest curve alone is returned."""
    curves = [c for r in runs for c in _xy(r, table, x_col, y_col)]
    curves = [(x, y) for x, y in curves if len(x)]
    if not curves:
        return None
    if all(len(x) == len(curves[0][0]) and np.array_equal(x, curves[0][0]) for x, _ in curves):
        return curves[0][0], np.stack([y for _, y in curves])
    lo = max(x[0] for x, _ in curves)
    hi = min(x[-1] for x, _ in curves)
    if lo > hi:  # no common range: fall back to the longest curve alone
        x, y = max(curves, key=lambda c: len(c[0]))
        return x, y[None]
    densest = max(curves, key=lambda c: len(c[0]))[0]
    grid = densest[(densest >= lo) & (densest <= hi)]
    if not len(grid):
        grid = np.array([lo])
    return grid, np.stack([np.interp(grid, x, y) for x, y in curves])


# Config entries that never tell two experiments apart: the seed (seeds are the samples), bookkeeping, and
# values derived from other keys or written by the run loop. ``varying_keys`` leaves them out.
NON_GROUPING_KEYS = frozenset({
    "seed", "num_seeds", "run_name", "out_dir", "progress", "log_every", "checkpoint_every", "stall_timeout",
    "clip_eps_effective", "num_agents_env", "family", "derived", "env_spec", "host_env",
})


def varying_keys(runs: Sequence[Run], exclude: Iterable[str] = NON_GROUPING_KEYS) -> list[str]:
    """The top-level config keys whose values differ between ``runs`` (in the order of their first
    appearance), except those in ``exclude`` (by default the seed, bookkeeping and derived entries):
    the default grouping of ``trustmarl table`` and ``trustmarl plot curves``. A key a run lacks counts as
    the value None."""
    skip = set(exclude)
    keys = list(dict.fromkeys(k for r in runs for k in r.config if k not in skip))
    return _varying(runs, keys)


def _require_table(runs: Sequence[Run], table: str, cols: Sequence[str]) -> None:
    for run in runs:
        for col in cols:
            run.column(table, col)


def _facet_keys(facet: str | Sequence[str] | None) -> tuple[str, ...]:
    if facet is None:
        return ()
    return (facet,) if isinstance(facet, str) else tuple(facet)


def _facets(runs: Sequence[Run], facet: str | Sequence[str] | None) -> list[tuple[tuple, list[Run]]]:
    keys = _facet_keys(facet)
    if not keys:
        return [((), list(runs))]
    groups = _group(runs, keys)
    # Panels left to right by team size (3s_vs_5z before 2s3z before 27m_vs_30m), then by name.
    agents = lambda g: min(_sort_key(r.get("num_agents")) for r in g[1])  # noqa: E731
    return sorted(groups, key=agents)


def _facet_title(facet: str | Sequence[str] | None, value: tuple, n_facets: int) -> str:
    keys = _facet_keys(facet)
    if not keys or (n_facets == 1 and all(v is None for v in value)):
        return ""
    return _label(keys, value, keys)


def _varying_in_panels(keys: Sequence[str], facets) -> list[str]:
    """The ``keys`` that differ between runs of one panel (``facets`` from :func:`_facets`); a key that
    only follows the panel, like the agent count of a map, is not among them."""
    return [k for k in keys if any(_varying(frun, [k]) for _, frun in facets)]
