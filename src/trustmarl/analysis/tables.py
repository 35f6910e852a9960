"""Result tables over seeds: mean ± std, interquartile mean and bootstrap intervals per configuration.

``trustmarl table RUNS... --metric return --window last:10`` reads run folders (as
:func:`trustmarl.analysis.runs.find_runs`), scores every seed, groups the seeds by configuration and prints
one row per configuration, as Markdown (and ``--csv FILE``):

* **Score of one seed.** ``window`` picks the updates: ``last:K`` is the mean of the metric over the seed's
  last K updates that logged a finite value (``final`` = ``last:1``, ``all`` = every update); ``tail:F`` is
  the mean over the finite values logged in the last fraction ``F`` of the seed's updates (e.g. ``tail:0.1``,
  the last 10 % of training, whichever updates ended an episode). Every seed of
  every run folder is one sample (the run loop vmaps ``num_seeds`` seeds inside one run and writes a row per
  seed and update; run folders that differ only in ``seed`` are pooled).
* **Groups.** By default everything in ``config.json`` that differs between the runs except the seed,
  bookkeeping and derived entries (:data:`~trustmarl.analysis.runs.NON_GROUPING_KEYS`); ``by`` names the
  keys instead. ``columns`` pivots one key into columns (rows = algorithms, columns = maps or settings,
  cells ``mean ± std``: the layout of Table 10 of the MAMT paper and the win-rate tables of the B2MAPO
  paper); the best cell of each column is bold.
* **Statistics** (Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice", the rliable
  recommendations), over the ``n`` seed scores ``x_1..x_n`` of a group:

  - mean and population standard deviation ``sqrt(Σ(x_i − mean)² / n)`` (the spread the learning-curve
    figures shade);
  - interquartile mean ``IQM = mean(x_(k+1) .. x_(n−k))`` of the sorted scores with ``k = ⌊n/4⌋``: the
    mean of the middle 50 %, robust to one outlying seed (``scipy.stats.trim_mean(x, 0.25)``, which is
    what rliable computes);
  - 95 % percentile bootstrap intervals of the mean and of the IQM: ``reps`` resamples of the scores with
    replacement, the statistic of each, and the 2.5 and 97.5 percentiles of those. With ``columns``, the
    last column is the IQM over all the row's cells with a **stratified** bootstrap (each column's seeds
    resampled within that column, rliable's ``StratifiedBootstrap``): meaningful when the columns' scores
    share a scale (win rates, normalised scores).

  The bootstrap is computed here with numpy (fixed ``seed``, so tables are reproducible); rliable itself
  is not a dependency (it brings arch, statsmodels, pandas and seaborn); ``tests/test_tables.py`` checks the
  IQM against rliable's when rliable is installed.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trustmarl.analysis.runs import PlotInputError, Run, _group, _hashable, _xy, find_runs, varying_keys

__all__ = [
    "METRIC_ALIASES",
    "Window",
    "parse_window",
    "metric_column",
    "iqm",
    "bootstrap_ci",
    "stratified_bootstrap_ci",
    "seed_scores",
    "GroupStats",
    "summarize",
    "aggregate",
    "Table",
    "make_table",
]

# Short metric names for the command line; any other metrics.csv column is taken as it is.
METRIC_ALIASES = {"return": "return_mean", "win": "win_rate", "winrate": "win_rate", "tv": "sum_tv"}


def metric_column(metric: str) -> str:
    """The metrics.csv column of ``metric`` (``return`` → ``return_mean``, ``win`` → ``win_rate``)."""
    return METRIC_ALIASES.get(metric, metric)


@dataclass(frozen=True)
class Window:
    """Which updates of a seed make its score: the last ``k`` with a finite value (``k=None``: all), or
    (``fraction``) the finite ones among the last ``fraction`` of all its updates."""

    k: int | None
    fraction: float | None = None

    def __str__(self) -> str:
        if self.fraction is not None:
            return f"tail:{self.fraction:g}"
        return "all" if self.k is None else f"last:{self.k}"

    def select(self, values: np.ndarray, updates: np.ndarray | None = None,
               span: tuple[float, float] | None = None) -> np.ndarray:
        """``values`` (finite, ordered by update) in the window; ``tail:F`` also needs their ``updates`` and the
        seed's first and last update ``span`` (finite or not): it keeps ``update > last − F·(last − first + 1)``."""
        if self.fraction is not None:
            first, last = span
            return values[updates > last - self.fraction * (last - first + 1)]
        return values if self.k is None else values[-self.k:]


def parse_window(text: str | Window) -> Window:
    """``last:K`` (K ≥ 1), ``tail:F`` (0 < F ≤ 1), ``final`` (= ``last:1``) or ``all``; ValueError otherwise."""
    if isinstance(text, Window):
        return text
    word = str(text).strip().lower()
    if word == "all":
        return Window(None)
    if word == "final":
        return Window(1)
    kind, sep, num = word.partition(":")
    if kind == "tail" and sep:
        try:
            f = float(num)
        except ValueError:
            f = 0.0
        if 0 < f <= 1:
            return Window(None, f)
    if kind == "last" and sep:
        try:
            k = int(num)
        except ValueError:
            k = 0
        if k >= 1:
            return Window(k)
    raise ValueError(f"window {text!r} is not last:K (K >= 1), tail:F (0 < F <= 1), final or all")


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis``: sort, drop ``k = ⌊n/4⌋`` values at each end, average the rest
    (``scipy.stats.trim_mean(x, 0.25)``; n < 4 drops nothing, so it is the mean)."""
    x = np.sort(np.asarray(x, dtype=float), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm of no values")
    k = n // 4
    return np.take(x, np.arange(k, n - k), axis=axis).mean(axis=axis)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(x, dtype=float).mean(axis=axis)


def stratified_bootstrap_ci(strata: Sequence[np.ndarray], statistic: Callable[..., np.ndarray] = iqm,
                            reps: int = 2000, conf: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over the pooled scores of ``strata``.

    Each replicate resamples every stratum's scores with replacement *within the stratum* (so each keeps
    its size), pools them and applies ``statistic`` (called as ``statistic(samples, axis=-1)``, vectorised
    over replicates); the interval is the ``(1 − conf)/2`` and ``(1 + conf)/2`` percentiles of the
    ``reps`` replicates. One stratum is the plain (i.i.d.) bootstrap.
    """
    strata = [np.asarray(s, dtype=float) for s in strata if len(s)]
    if not strata:
        return math.nan, math.nan
    if not 0 < conf < 1:
        raise ValueError(f"conf={conf} must be in (0, 1)")
    if reps < 1:
        raise ValueError(f"reps={reps} must be >= 1")
    rng = np.random.default_rng(seed)
    draws = [s[rng.integers(0, len(s), size=(reps, len(s)))] for s in strata]
    stats = statistic(np.concatenate(draws, axis=1), axis=-1)
    lo, hi = np.percentile(stats, [50 * (1 - conf), 50 * (1 + conf)])
    return float(lo), float(hi)


def bootstrap_ci(x: np.ndarray, statistic: Callable[..., np.ndarray] = _mean, reps: int = 2000,
                 conf: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (default the mean) of the scores ``x``."""
    return stratified_bootstrap_ci([x], statistic, reps, conf, seed)


# --------------------------------------------------------------------------------------------
# scores and groups
# --------------------------------------------------------------------------------------------


def seed_scores(run: Run, metric: str, window: str | Window = "last:10") -> np.ndarray:
    """One score per seed of ``run``: the mean of ``metric`` (a metrics.csv column or alias) over the
    seed's updates in ``window``. A seed with no finite value of the metric has no score."""
    col, win = metric_column(metric), parse_window(window)
    run.column("metrics", col)  # a one-line PlotInputError when the column is missing
    updates = run.column("metrics", "update")
    span = (float(np.nanmin(updates)), float(np.nanmax(updates))) if np.isfinite(updates).any() else (0.0, 0.0)
    scores = []
    for x, y in _xy(run, "metrics", "update", col):
        if len(y):
            chosen = win.select(y, x, span)
            if len(chosen):
                scores.append(float(chosen.mean()))
    return np.asarray(scores, dtype=float)


@dataclass
class GroupStats:
    """Statistics of one group's seed scores (NaN where undefined, e.g. no scores)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    iqm: float
    iqm_ci_low: float
    iqm_ci_high: float
    min: float
    max: float
    scores: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("n", "mean", "std", "ci_low", "ci_high", "iqm", "iqm_ci_low",
                                             "iqm_ci_high", "min", "max")}


def summarize(scores: np.ndarray, reps: int = 2000, conf: float = 0.95, seed: int = 0) -> GroupStats:
    """:class:`GroupStats` of the scores (non-finite ones dropped)."""
    x = np.asarray(scores, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        nan = math.nan
        return GroupStats(0, nan, nan, nan, nan, nan, nan, nan, nan, nan, x)
    lo, hi = bootstrap_ci(x, _mean, reps, conf, seed)
    ilo, ihi = bootstrap_ci(x, iqm, reps, conf, seed)
    return GroupStats(len(x), float(x.mean()), float(x.std()), lo, hi, float(iqm(x)), ilo, ihi,
                      float(x.min()), float(x.max()), x)


def aggregate(runs: Iterable[str | Path | Run], metric: str = "return", window: str | Window = "last:10",
              by: Sequence[str] | None = None) -> tuple[tuple[str, ...], list[tuple[tuple, np.ndarray]]]:
    """Seed scores grouped by configuration: ``(keys, [(values, scores), ...])`` sorted by the values.
    ``by=None`` groups by every config key that differs between the runs except the seed
    (:func:`~trustmarl.analysis.runs.varying_keys`)."""
    found = find_runs(list(runs) if not isinstance(runs, (str, Path)) else runs)
    keys = tuple(by) if by else tuple(varying_keys(found))
    win = parse_window(window)
    col = metric_column(metric)
    if not any(r.has_data("metrics", col) for r in found):
        raise PlotInputError(f"no run has data for metric {col!r}")
    groups = []
    for values, group in _group(found, keys):
        scores = [seed_scores(r, col, win) for r in group if r.has_data("metrics", col)]
        groups.append((values, np.concatenate(scores) if scores else np.zeros(0)))
    return keys, groups


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def _fmt(x: float, digits: int) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}"


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(_value(x) for x in v)
    return "—" if v is None else str(v)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


@dataclass
class Table:
    """A result table: Markdown for the terminal and the docs, CSV (one row per group, or per row and
    column cell) for further processing."""

    metric: str
    window: Window
    keys: tuple[str, ...]
    header: list[str]
    rows: list[list[str]]
    records: list[dict[str, Any]]

    def markdown(self) -> str:
        title = f"{self.metric}, {self.window} updates per seed"
        lines = [_md_row(self.header), _md_row(["---"] * len(self.header))]
        lines += [_md_row(r) for r in self.rows]
        return f"{title}\n\n" + "\n".join(lines) + "\n"

    def csv(self) -> str:
        buf = io.StringIO()
        fields = list(self.records[0]) if self.records else ["metric"]
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for rec in self.records:
            w.writerow({k: (_value(v) if k in self.keys else v) for k, v in rec.items()})
        return buf.getvalue()


def _auto_digits(values: Iterable[float]) -> int:
    """Decimals that show every finite non-zero value with at least two significant digits (2 to 6)."""
    need = [math.ceil(-math.log10(abs(v))) + 1 for v in values if math.isfinite(v) and v != 0]
    return int(min(6, max([2, *need])))


def make_table(runs: Iterable[str | Path | Run], metric: str = "return", window: str | Window = "last:10",
               by: Sequence[str] | None = None, columns: str | None = None, digits: int | None = None,
               reps: int = 2000, conf: float = 0.95, seed: int = 0, higher_is_better: bool = True) -> Table:
    """The table of ``metric`` over seeds per configuration (see the module docstring).

    ``digits``: decimals shown (default: enough for two significant digits of every mean, 2 to 6).
    Without ``columns``: one row per group with ``n``, ``mean ± std``, the bootstrap interval of the mean,
    the IQM and its interval. With ``columns`` (a config key, e.g. ``task`` or ``env``): rows are the other
    grouping keys, one ``mean ± std`` cell per value of ``columns`` (best per column in bold), and a last
    column with the IQM over the row's cells and its stratified bootstrap interval.
    """
    win = parse_window(window)
    col = metric_column(metric)
    found = find_runs(list(runs) if not isinstance(runs, (str, Path)) else runs)
    keys = tuple(by) if by else tuple(varying_keys(found))
    if columns is not None:
        keys = tuple(k for k in keys if k != columns) + (columns,)
    keys, groups = aggregate(found, col, win, keys)
    pct = f"{round(100 * conf)}%"
    records: list[dict[str, Any]] = []
    if digits is None:
        digits = _auto_digits(float(np.mean(s[np.isfinite(s)])) for _, s in groups if np.isfinite(s).any())
    if columns is None:
        header = [*keys, "n", "mean ± std", f"{pct} CI (mean)", "IQM", f"{pct} CI (IQM)"]
        rows = []
        for values, scores in groups:
            st = summarize(scores, reps, conf, seed)
            rows.append([*(_value(v) for v in values), str(st.n), f"{_fmt(st.mean, digits)} ± {_fmt(st.std, digits)}",
                         f"[{_fmt(st.ci_low, digits)}, {_fmt(st.ci_high, digits)}]", _fmt(st.iqm, digits),
                         f"[{_fmt(st.iqm_ci_low, digits)}, {_fmt(st.iqm_ci_high, digits)}]"])
            records.append({**dict(zip(keys, values)), "metric": col, "window": str(win), **st.as_dict()})
        return Table(col, win, keys, header, rows, records)

    row_keys = keys[:-1]
    col_values = sorted({values[-1] for values, _ in groups}, key=_col_sort)
    cells: dict[tuple, dict[Any, GroupStats]] = {}
    for values, scores in groups:
        st = summarize(scores, reps, conf, seed)
        cells.setdefault(values[:-1], {})[values[-1]] = st
        records.append({**dict(zip(keys, values)), "metric": col, "window": str(win), **st.as_dict()})
    best: dict[Any, float] = {}
    for cv in col_values:
        means = [c[cv].mean for c in cells.values() if cv in c and math.isfinite(c[cv].mean)]
        if len(means) > 1:
            best[cv] = max(means) if higher_is_better else min(means)
    header = [*(row_keys or ("runs",)), *(_value(v) for v in col_values), f"IQM over {columns} [{pct} CI]"]
    rows = []
    for rvals, by_col in cells.items():
        row = [*(_value(v) for v in rvals)] if row_keys else ["all"]
        for cv in col_values:
            st = by_col.get(cv)
            if st is None or not st.n:
                row.append("—")
                continue
            text = f"{_fmt(st.mean, digits)} ± {_fmt(st.std, digits)}"
            row.append(f"**{text}**" if best.get(cv) == st.mean else text)
        strata = [st.scores for st in by_col.values() if st.n]
        if strata:
            pooled = iqm(np.concatenate(strata))
            lo, hi = stratified_bootstrap_ci(strata, iqm, reps, conf, seed)
            row.append(f"{_fmt(float(pooled), digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]")
        else:
            row.append("—")
        rows.append(row)
    return Table(col, win, keys, header, rows, records)


def _col_sort(v: Any):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, str(_hashable(v)))
