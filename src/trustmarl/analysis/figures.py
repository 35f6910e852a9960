"""Figures of Sun et al. (2022) from trainer run folders (matplotlib, Agg, no pyplot state).

Every multi-run function takes ``runs`` (run folders, or folders searched recursively for
``config.json``) and ``out`` (the image path; its suffix picks the format), groups runs by config
values, averages seeds (every seed of every run folder is one sample of the mean +- std), and returns
``out`` as a ``Path``.  Reading, grouping and labelling the runs (the run-folder contract,
``IDENTITY_KEYS``, ``PlotInputError`` for bad input) are in :mod:`trustmarl.analysis.runs`.

Figures (paper numbering):
  * ``plot_ratio_range``           Fig. 1    min/max ratio vs optimisation epoch, per clip value.
  * ``plot_tv_cdf``                Fig. 2/7  empirical CDF of per-agent TV and of summed TV.
  * ``plot_returns_and_tv``        Fig. 3/8  return, summed TV (and win rate) vs env steps per clip value.
  * ``plot_joint_vs_independent``  Fig. 9/10 joint TV, return, win rate: joint vs independent ratio clipping.
  * ``plot_ippo_vs_mappo``         Fig. 4    IPPO vs MAPPO across maps.
  * ``plot_learning_curve``        one run: return (and win rate) vs env steps.
  * ``plot_curves``                learning curves of several runs grouped by any config key, with a shaded
                                   spread over seeds (std, or a bootstrap interval of the mean or the IQM).

``FIGURES`` maps CLI names to the multi-run functions ("learning-curve" takes exactly one run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from trustmarl.analysis.runs import (
    _LABELS,
    _TABLE_FILES,
    PlotInputError,
    Run,
    _aggregate,
    _curve_keys,
    _curve_label,
    _facet_keys,
    _facet_title,
    _facets,
    _group,
    _hashable,
    _label,
    _n_seeds,
    _require_table,
    _sort_key,
    _varying,
    _varying_in_panels,
    _xy,
    curve_samples,
    find_runs,
    varying_keys,
)

__all__ = [
    "plot_ratio_range",
    "plot_tv_cdf",
    "plot_returns_and_tv",
    "plot_joint_vs_independent",
    "plot_ippo_vs_mappo",
    "plot_learning_curve",
    "plot_curves",
    "FIGURES",
]


def _plot_band(ax, agg, label: str, color: str, **kw) -> None:
    x, mean, std, n = agg
    ax.plot(x, mean, color=color, label=label, **kw)
    if n > 1:
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)


def _new_figure(nrows: int, ncols: int, w: float = 4.2, h: float = 3.2):
    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def _steps_axis(ax):
    """Env-step x axes read 400k rather than colliding 400000 labels."""
    from matplotlib.ticker import EngFormatter
    ax.xaxis.set_major_formatter(EngFormatter())


def _save(fig: Figure, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


def _colors(runs: Sequence[Run], group_by: Sequence[str], facets=None) -> dict[tuple, str]:
    """One colour per group over all runs, so a group keeps its colour in every panel.

    With ``facets`` (from :func:`_facets`), only the keys that vary inside some panel pick the colour:
    a key that just follows the panel (the agent count of a map) would otherwise use up the palette
    and give two curves of one panel the same colour.
    """
    idx = list(range(len(group_by)))
    if facets:
        inside = _varying_in_panels(group_by, facets)
        idx = [i for i, k in enumerate(group_by) if k in inside] or idx
    groups = _group(runs, group_by)
    shade = {}
    for gval, _ in groups:
        shade.setdefault(tuple(gval[i] for i in idx), f"C{len(shade) % 10}")
    return {gval: shade[tuple(gval[i] for i in idx)] for gval, _ in groups}


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _seed_masks(run: Run, table: str) -> list[np.ndarray]:
    """Row masks of ``table``, one per value of its ``seed`` column (one mask of every row without one)."""
    seeds = run.table(table).get("seed")
    n = len(next(iter(run.table(table).values())))
    if seeds is None or not np.isfinite(seeds).any():
        return [np.ones(n, dtype=bool)]
    return [seeds == s for s in np.unique(seeds[np.isfinite(seeds)])]


def _clip_range(run: Run) -> tuple[float, float] | None:
    eps = run.get("clip")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps <= 0:
        return None
    kind = run.get("clip_kind", "symmetric")
    return (1.0 / (1.0 + eps), 1.0 + eps) if kind == "multiplicative" else (1.0 - eps, 1.0 + eps)


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def plot_ratio_range(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    update: int | str | None = None,
    group_by: Sequence[str] = ("clip",),
    facet: str | Sequence[str] | None = "task",
) -> Path:
    """Fig. 1: min and max ratio against the optimisation epoch, one line pair per clip value.

    Reads ``trust_region.csv``.  At each epoch the solid (max) and dashed (min) lines are the mean
    over seeds of each seed's mean over updates of ``ratio_max`` / ``ratio_min`` (already extremes over
    agents and samples); with several seeds a darker band around each line is ± one std over seeds; the
    light band reaches the most extreme value seen.  ``update`` restricts to one
    update number, or ``"first"`` to each run's first update (the paper's "first round of actor
    update").  Dotted lines mark each group's clip range.  One panel per ``facet`` value.
    """
    runs_ = find_runs(runs)
    _require_table(runs_, "trust_region", ("epoch", "ratio_min", "ratio_max"))
    facets = _facets(runs_, facet)
    group_by = _curve_keys(runs_, group_by, facet)
    show = _varying_in_panels(group_by, facets) or list(group_by[:1])
    colors = _colors(runs_, group_by, facets)
    fig, axes = _new_figure(1, len(facets))
    plotted = 0
    for ax, (fval, frun) in zip(axes[0], facets):
        for gval, grun in _group(frun, group_by):
            per_seed = []  # (epochs, mean ratio_min, mean ratio_max, extreme min, extreme max) of each seed
            for run in grun:
                ep_all = run.column("trust_region", "epoch")
                for seed_rows in _seed_masks(run, "trust_region"):
                    sel = seed_rows & np.isfinite(ep_all)
                    if update is not None:
                        upd = run.column("trust_region", "update")
                        target = np.nanmin(upd[seed_rows]) if update == "first" else float(update)
                        sel &= upd == target
                    ep = ep_all[sel]
                    if not len(ep):
                        continue
                    lo, hi = run.column("trust_region", "ratio_min")[sel], run.column("trust_region", "ratio_max")[sel]
                    xs = np.unique(ep)
                    per_seed.append((xs, *(np.array([f(v[ep == e]) for e in xs])
                                           for f, v in ((np.nanmean, lo), (np.nanmean, hi), (np.nanmin, lo),
                                                        (np.nanmax, hi)))))
            if not per_seed:
                continue
            # epochs every seed has (the seeds of one experiment share them)
            xs = per_seed[0][0]
            for p in per_seed[1:]:
                xs = np.intersect1d(xs, p[0])
            pick = lambda p, k: p[k][np.searchsorted(p[0], xs)]  # noqa: E731
            seed_lo, seed_hi = (np.stack([pick(p, k) for p in per_seed]) for k in (1, 2))
            mean_lo, mean_hi = seed_lo.mean(0), seed_hi.mean(0)
            ext_lo = np.min([pick(p, 3) for p in per_seed], axis=0)
            ext_hi = np.max([pick(p, 4) for p in per_seed], axis=0)
            color = colors[gval]
            label = _curve_label(group_by, gval, show, len(per_seed))
            plotted += 1
            ax.plot(xs, mean_hi, color=color, label=label)
            ax.plot(xs, mean_lo, color=color, linestyle="--")
            ax.fill_between(xs, ext_lo, ext_hi, color=color, alpha=0.12, linewidth=0)
            if len(per_seed) > 1:  # mean ± std over seeds of each line
                for m, sd in ((mean_hi, seed_hi.std(0)), (mean_lo, seed_lo.std(0))):
                    ax.fill_between(xs, m - sd, m + sd, color=color, alpha=0.3, linewidth=0)
            bounds = _clip_range(grun[0])
            if bounds is not None:
                for b in bounds:
                    ax.axhline(b, color=color, linestyle=":", linewidth=0.8)
        ax.axhline(1.0, color="0.5", linewidth=0.5)
        ax.set_xlabel("optimisation epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("ratio (max solid, min dashed)")
        ax.set_title(_facet_title(facet, fval, len(facets)))
        _legend(ax)
    if not plotted:
        raise PlotInputError(f"no trust_region.csv rows with a finite epoch for update={update!r}")
    return _save(fig, out)


def _ecdf(ax, per_seed: list[np.ndarray], label: str, color: str) -> None:
    """The pooled empirical CDF of every seed's values, and with several seeds a band of ± one std over the
    seeds' own CDFs, evaluated at every pooled value."""
    per_seed = [v[np.isfinite(v)] for v in per_seed]
    per_seed = [v for v in per_seed if len(v)]
    if not per_seed:
        return
    values = np.sort(np.concatenate(per_seed))
    frac = np.arange(1, len(values) + 1) / len(values)
    xs, ys = np.concatenate([[values[0]], values]), np.concatenate([[0.0], frac])
    ax.step(xs, ys, where="post", color=color, label=label)
    if len(per_seed) > 1:
        cdfs = np.stack([np.searchsorted(np.sort(v), values, side="right") / len(v) for v in per_seed])
        mean, sd = cdfs.mean(0), cdfs.std(0)
        ax.fill_between(values, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1), step="post", color=color,
                        alpha=0.2, linewidth=0)


def plot_tv_cdf(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    source: str = "metrics",
    group_by: Sequence[str] = ("task", "num_agents", "clip", "ratio", "algo", "update_epochs"),
) -> Path:
    """Fig. 2 / 7: empirical CDFs of the per-agent TV (left) and of the summed TV (right).

    Left: every ``tv_<i>`` value (all agents, all rows, all seeds of a group) pooled -- the
    decentralised trust region E_s D_TV(pi_i, pi~_i); with several seeds a band of ± one std over the
    seeds' own CDFs.  Right: ``sum_tv`` -- the centralised trust
    region alpha of Theorem 4.3.  ``source`` is ``"metrics"`` (one value per update) or
    ``"trust_region"`` (one per optimisation epoch, as in Fig. 7).  One curve per group; labels
    show the grouping keys that vary (clip for Fig. 2 left, number of agents for Fig. 2 right, epochs
    per update for Fig. 7).
    """
    if source not in _TABLE_FILES:
        raise PlotInputError(f"source {source!r} is invalid; allowed: {', '.join(_TABLE_FILES)}")
    runs_ = find_runs(runs)
    _require_table(runs_, source, ("sum_tv",))
    for run in runs_:
        if not run.agent_columns(source, "tv"):
            raise PlotInputError(f"{run.path / _TABLE_FILES[source]}: no per-agent tv_<i> columns")
    fig, axes = _new_figure(1, 2)
    group_by = _curve_keys(runs_, group_by)
    show = _varying(runs_, group_by) or list(group_by[:1])
    for gi, (gval, grun) in enumerate(_group(runs_, group_by)):
        color = f"C{gi % 10}"
        label = _curve_label(group_by, gval, show, _n_seeds(grun, source))
        per_agent = [np.concatenate([run.column(source, c)[rows] for c in run.agent_columns(source, "tv")])
                     for run in grun for rows in _seed_masks(run, source)]
        summed = [run.column(source, "sum_tv")[rows] for run in grun for rows in _seed_masks(run, source)]
        _ecdf(axes[0, 0], per_agent, label, color)
        _ecdf(axes[0, 1], summed, label, color)
    axes[0, 0].set_xlabel(r"$\mathbb{E}_s D_{TV}(\pi_i, \tilde\pi_i)$ per agent")
    axes[0, 1].set_xlabel(_LABELS["sum_tv"])
    axes[0, 0].set_title("decentralised trust region")
    axes[0, 1].set_title("centralised trust region")
    for ax in axes[0]:
        ax.set_ylabel("cumulative fraction")
        ax.set_ylim(0.0, 1.02)
        _legend(ax)
    return _save(fig, out)


_DIVERGENCES = ("sum_tv", "joint_tv_bound", "joint_tv_coupling", "joint_tv_mc", "joint_tv_exact", "joint_kl")


def _log_if_wide(ax, span: float = 20.0) -> None:
    """Log y axis when a panel's positive curves span more than ``span``×: unclipped runs' divergences
    otherwise flatten every clipped curve onto the x axis."""
    ys = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.get_lines()] or [np.zeros(0)])
    ys = ys[np.isfinite(ys)]
    if ys.size and ys.min() > 0 and ys.max() / ys.min() > span:
        ax.set_yscale("log")


def _curves_grid(
    runs_: Sequence[Run],
    out: str | Path,
    rows: Sequence[str],
    group_by: Sequence[str],
    facet: str | Sequence[str] | None,
    x_col: str = "env_steps",
    transpose: bool = False,
) -> Path:
    """Grid of y-vs-x curves: one row per metric (only metrics some run has data for) and one
    column per facet value (or the transpose); one curve per group, mean +- std over seeds.
    One metric over a two-key facet (Fig. 10: map x clip) is laid out as a 2-D grid instead: the
    first key's values across, the second's down."""
    rows = [m for m in rows if any(r.has_data("metrics", m) for r in runs_)]
    if not rows:
        raise PlotInputError("no run has data for any of the plotted metrics")
    facets = _facets(runs_, facet)
    group_by = _curve_keys(runs_, group_by, facet)
    # Labels name what differs between the curves of a panel; a key that only follows the panel (the agent
    # count of a map) is already in its title.
    show = _varying_in_panels(group_by, facets) or list(group_by[:1])
    colors = _colors(runs_, group_by, facets)
    if len(rows) == 1 and len(_facet_keys(facet)) == 2:
        across = list(dict.fromkeys(fval[0] for fval, _ in facets))  # already ordered by team size
        down = sorted({fval[1] for fval, _ in facets}, key=_sort_key)
        fig, axes = _new_figure(len(down), len(across))
        place = lambda fi, fval, mi: axes[down.index(fval[1]), across.index(fval[0])]  # noqa: E731
        for ax in axes.flat:  # a (map, clip) pair no run has stays blank
            ax.set_visible(False)
    else:
        nr, nc = (len(facets), len(rows)) if transpose else (len(rows), len(facets))
        fig, axes = _new_figure(nr, nc)
        place = lambda fi, fval, mi: axes[fi, mi] if transpose else axes[mi, fi]  # noqa: E731
    for fi, (fval, frun) in enumerate(facets):
        for mi, metric in enumerate(rows):
            ax = place(fi, fval, mi)
            ax.set_visible(True)
            for gval, grun in _group(frun, group_by):
                with_data = [r for r in grun if r.has_data("metrics", metric)]
                agg = _aggregate(with_data, "metrics", x_col, metric) if with_data else None
                if agg is not None:
                    _plot_band(ax, agg, _curve_label(group_by, gval, show, agg[3]), colors[gval])
            ax.set_xlabel(_LABELS.get(x_col, x_col))
            ax.set_ylabel(_LABELS.get(metric, metric))
            if metric in _DIVERGENCES:
                _log_if_wide(ax)
            title = _facet_title(facet, fval, len(facets))
            if title and (transpose or mi == 0 or len(rows) == 1):
                ax.set_title(title)
            _legend(ax)
    return _save(fig, out)


def plot_returns_and_tv(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    tv_col: str = "sum_tv",
    group_by: Sequence[str] = ("clip", "ratio", "algo"),
    facet: str | Sequence[str] | None = "task",
) -> Path:
    """Fig. 3 / 8: return, trust-region estimate ``tv_col`` and (if logged) win rate vs env steps.

    Reads ``metrics.csv``; one curve per clip value (labels show whichever of ``group_by``
    varies), mean +- std over seeds; one column per ``facet`` value (map).
    """
    runs_ = find_runs(runs)
    _require_table(runs_, "metrics", ("env_steps", "return_mean", tv_col))
    return _curves_grid(runs_, out, ["return_mean", tv_col, "win_rate"], group_by, facet)


def plot_joint_vs_independent(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    tv_col: str = "joint_tv_bound",
    group_by: Sequence[str] = ("ratio",),
    facet: str | Sequence[str] = "clip",
    rows: Sequence[str] | None = None,
) -> Path:
    """Fig. 9 / 10: joint versus independent ratio clipping at each clip value.

    One row per clip value (and map, when several), columns: joint divergence estimate
    ``tv_col`` (default the union bound; ``"joint_kl"`` or ``"sum_tv"`` also work), return, and
    win rate when logged.  ``rows`` picks other metrics.csv columns instead (Fig. 10:
    ``("win_rate",)``).  One curve per ``ratio`` type, mean +- std over seeds.
    """
    runs_ = find_runs(runs)
    rows = list(rows) if rows is not None else [tv_col, "return_mean", "win_rate"]
    if not rows:
        raise PlotInputError("rows is empty; give at least one metrics.csv column")
    _require_table(runs_, "metrics", ("env_steps", *rows[:1]))
    if len({_hashable(r.get("task")) for r in runs_}) > 1:
        keys = _facet_keys(facet)
        facet = keys if "task" in keys else ("task",) + keys  # one row per (map, clip value)
    return _curves_grid(runs_, out, rows, group_by, facet, transpose=True)


def plot_ippo_vs_mappo(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    group_by: Sequence[str] = ("algo",),
    facet: str | Sequence[str] | None = "task",
) -> Path:
    """Fig. 4: IPPO against MAPPO on each map: win rate (when logged) and return vs env steps,
    one column per map, one curve per ``algo``, mean +- std over seeds."""
    runs_ = find_runs(runs)
    _require_table(runs_, "metrics", ("env_steps", "return_mean"))
    return _curves_grid(runs_, out, ["win_rate", "return_mean"], group_by, facet)


def plot_learning_curve(run: str | Path, out: str | Path) -> Path:
    """One run: return vs env steps, and win rate beside it when the run logs one (each seed of
    the run as a thin line, with mean +- std, when metrics.csv has several seeds)."""
    found = find_runs([run])
    if len(found) != 1:
        raise PlotInputError(f"{run}: expected one run folder, found {len(found)}")
    r = found[0]
    _require_table(found, "metrics", ("env_steps", "return_mean"))
    metrics = ["return_mean"] + (["win_rate"] if r.has_data("metrics", "win_rate") else [])
    fig, axes = _new_figure(1, len(metrics), w=5.0)
    for ax, metric in zip(axes[0], metrics):
        curves = _xy(r, "metrics", "env_steps", metric)
        if len(curves) > 1:  # several seeds in the run: thin line each, mean +- std on top
            for x, y in curves:
                ax.plot(x, y, color="C0", alpha=0.25, linewidth=0.8)
            agg = _aggregate([r], "metrics", "env_steps", metric)
            if agg is not None:
                _plot_band(ax, agg, f"mean of {agg[3]} seeds", "C0")
                _legend(ax)
        else:
            ax.plot(*curves[0], color="C0")
        ax.set_xlabel(_LABELS["env_steps"])
        _steps_axis(ax)
        ax.set_ylabel(_LABELS.get(metric, metric))
    keys = [k for k in ("algo", "task", "ratio", "clip", "seed") if r.get(k) is not None]
    desc = _label(keys, [r.get(k) for k in keys], keys)
    fig.suptitle(desc or str(r.path), fontsize="medium", wrap=True)
    return _save(fig, out)


def _learning_curve_figure(runs: Sequence[str | Path], out: str | Path) -> Path:
    found = find_runs(runs)
    if len(found) != 1:
        raise PlotInputError(f"learning-curve takes exactly one run folder, got {len(found)}")
    return plot_learning_curve(found[0].path, out)


def _smooth(ys: np.ndarray, k: int) -> np.ndarray:
    """Trailing moving average over ``k`` points along the last axis (the first points average fewer)."""
    if k <= 1:
        return ys
    c = np.cumsum(np.pad(ys, [(0, 0)] * (ys.ndim - 1) + [(1, 0)]), axis=-1)
    idx = np.arange(ys.shape[-1])
    lo = np.maximum(idx + 1 - k, 0)
    return (c[..., idx + 1] - c[..., lo]) / (idx + 1 - lo)


def plot_curves(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    metric: Sequence[str] = ("return_mean",),
    group_by: Sequence[str] | None = None,
    facet: str | Sequence[str] | None = None,
    x: str = "env_steps",
    spread: str = "std",
    center: str = "mean",
    smooth: int = 1,
    reps: int = 1000,
) -> Path:
    """Learning curves of several runs: one curve per group of runs, a shaded spread over their seeds.

    ``metric``: metrics.csv columns, one row of panels each (``return`` and ``win`` are accepted for
    ``return_mean`` and ``win_rate``). ``group_by``: config keys (any, e.g. ``algo``, ``lr``,
    ``num_agents``); default every key that differs between the runs except the seed
    (:func:`~trustmarl.analysis.runs.varying_keys`). ``facet``: a key giving one column of panels per
    value. ``center``: ``mean`` or ``iqm`` (interquartile mean over seeds at each x). ``spread``: ``std``
    (± population std over seeds), ``ci`` (95 % percentile bootstrap interval of the centre, ``reps``
    resamples of the seeds), ``minmax`` or ``none``. ``smooth``: trailing moving average over that many
    logged points, applied to each seed's curve first. Every seed of every run folder is one sample.
    """
    from trustmarl.analysis.tables import iqm, metric_column

    if spread not in ("std", "ci", "minmax", "none"):
        raise PlotInputError(f"spread {spread!r} is invalid; allowed: std, ci, minmax, none")
    if center not in ("mean", "iqm"):
        raise PlotInputError(f"center {center!r} is invalid; allowed: mean, iqm")
    metrics = [metric] if isinstance(metric, str) else list(metric)
    metrics = [metric_column(m) for m in metrics]
    if not metrics:
        raise PlotInputError("metric is empty; give at least one metrics.csv column")
    runs_ = find_runs(runs)
    _require_table(runs_, "metrics", (x,))
    metrics = [m for m in metrics if any(r.has_data("metrics", m) for r in runs_)]
    if not metrics:
        raise PlotInputError("no run has data for any of the plotted metrics")
    facet_keys = _facet_keys(facet)
    keys = tuple(group_by) if group_by else tuple(k for k in varying_keys(runs_) if k not in facet_keys)
    facets = _facets(runs_, facet)
    show = _varying_in_panels(keys, facets) or list(keys[:1])
    colors = _colors(runs_, keys, facets) if keys else {(): "C0"}
    stat = iqm if center == "iqm" else (lambda a, axis=-1: np.mean(a, axis=axis))
    fig, axes = _new_figure(len(metrics), len(facets))
    for fi, (fval, frun) in enumerate(facets):
        for mi, m in enumerate(metrics):
            ax = axes[mi, fi]
            for gval, grun in _group(frun, keys):
                samples = curve_samples([r for r in grun if r.has_data("metrics", m)], "metrics", x, m)
                if samples is None:
                    continue
                xs, ys = samples
                ys = _smooth(ys, int(smooth))
                mid = stat(ys, axis=0)
                n = len(ys)
                label = _curve_label(keys, gval, show, n) if keys else (f"runs (n={n})" if n > 1 else "runs")
                color = colors[gval]
                ax.plot(xs, mid, color=color, label=label)
                if n > 1 and spread != "none":
                    if spread == "std":
                        lo, hi = mid - ys.std(0), mid + ys.std(0)
                    elif spread == "minmax":
                        lo, hi = ys.min(0), ys.max(0)
                    else:
                        rng = np.random.default_rng(0)
                        boot = stat(ys[rng.integers(0, n, size=(int(reps), n))], axis=1)  # [reps, len(x)]
                        lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
                    ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
            ax.set_xlabel(_LABELS.get(x, x))
            if x == "env_steps":
                _steps_axis(ax)
            what = {"std": " (± std)", "ci": " (95% CI)", "minmax": " (min-max)", "none": ""}[spread]
            ax.set_ylabel(_LABELS.get(m, m) + (" IQM" if center == "iqm" else "") + what)
            title = _facet_title(facet, fval, len(facets))
            if title and mi == 0:
                ax.set_title(title)
            _legend(ax)
    return _save(fig, out)


FIGURES: dict[str, Callable[..., Path]] = {
    "ratio-range": plot_ratio_range,
    "tv-cdf": plot_tv_cdf,
    "returns-tv": plot_returns_and_tv,
    "joint-vs-independent": plot_joint_vs_independent,
    "ippo-vs-mappo": plot_ippo_vs_mappo,
    "learning-curve": _learning_curve_figure,
    "curves": plot_curves,
}
