"""trustmarl.analysis (runs, figures) against synthetic run folders written to the run-folder contract."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from trustmarl.analysis import figures as pl
from trustmarl.analysis import runs as rn

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run(
    root: Path,
    name: str,
    *,
    algo="ippo",
    env="2s3z",
    clip_eps=0.1,
    ratio="independent",
    seed=0,
    num_agents=3,
    updates=6,
    epochs=4,
    wins=True,
    steps_per_update=1000,
    seeds_in_run=0,
    extra_config=None,
) -> Path:
    """Write config.json, metrics.csv and trust_region.csv like the trainer does.

    ``seeds_in_run`` > 0 adds a ``seed`` column with one row per (seed, update [, epoch]), as
    trustmarl.runtime writes for seeds vmapped inside one run."""
    run = root / name
    run.mkdir(parents=True)
    cfg = {"algo": algo, "env": env, "clip_eps": clip_eps, "ratio": ratio, "seed": seed,
           "num_agents": num_agents, "ppo": {"epochs": epochs}, **(extra_config or {})}
    (run / "config.json").write_text(json.dumps(cfg))
    r = np.random.default_rng(seed + int(1000 * clip_eps))
    agents = range(num_agents)

    seed_ids = list(range(seeds_in_run)) or [None]
    seed_col = ["seed"] if seeds_in_run else []

    m_cols = seed_col + ["update", "env_steps", "return_mean", "win_rate", "sum_tv", "joint_tv_bound", "joint_kl"]
    m_cols += [f"{p}_{i}" for i in agents for p in ("ratio_min", "ratio_max", "tv")]
    with (run / "metrics.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=m_cols)
        w.writeheader()
        for u, sid in itertools.product(range(updates), seed_ids):
            tv = r.uniform(0, clip_eps, num_agents)
            row = {} if sid is None else {"seed": sid}
            row |= {"update": u, "env_steps": (u + 1) * steps_per_update, "return_mean": u + r.normal(),
                    "win_rate": (u / updates if wins else ""), "sum_tv": tv.sum(),
                    "joint_tv_bound": min(1.0, tv.sum()), "joint_kl": 2 * tv.sum() ** 2}
            for i in agents:
                row[f"ratio_min_{i}"] = 1 - clip_eps * r.uniform(0.5, 1.5)
                row[f"ratio_max_{i}"] = 1 + clip_eps * r.uniform(0.5, 1.5)
                row[f"tv_{i}"] = tv[i]
            w.writerow(row)

    t_cols = seed_col + ["update", "epoch", "env_steps", "ratio_min", "ratio_max", "sum_tv", "joint_tv_bound",
                         "joint_tv_mc", "joint_kl"]
    t_cols += [f"{p}_{i}" for i in agents for p in ("ratio_min", "ratio_max", "tv", "kl")]
    with (run / "trust_region.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=t_cols)
        w.writeheader()
        for u, e, sid in itertools.product(range(updates), range(epochs), seed_ids):
            growth = clip_eps * (e + 1) / epochs
            tv = r.uniform(0, growth, num_agents)
            row = {} if sid is None else {"seed": sid}
            row |= {"update": u, "epoch": e, "env_steps": (u + 1) * steps_per_update,
                    "ratio_min": 1 - growth * 1.2, "ratio_max": 1 + growth * 1.3, "sum_tv": tv.sum(),
                    "joint_tv_bound": min(1.0, tv.sum()), "joint_tv_mc": 0.9 * min(1.0, tv.sum()),
                    "joint_kl": 2 * tv.sum() ** 2}
            for i in agents:
                row[f"ratio_min_{i}"] = 1 - growth
                row[f"ratio_max_{i}"] = 1 + growth
                row[f"tv_{i}"] = tv[i]
                row[f"kl_{i}"] = 2 * tv[i] ** 2
            w.writerow(row)
    return run


@pytest.fixture
def sweep(tmp_path: Path) -> list[Path]:
    """Clip sweep x 2 seeds x joint/independent on one map, plus IPPO/MAPPO on a second map."""
    runs = []
    for clip in (0.1, 0.3):
        for seed in (0, 1):
            for ratio in ("independent", "joint"):
                runs.append(write_run(tmp_path / "runs", f"{ratio}_c{clip}_s{seed}", clip_eps=clip,
                                      seed=seed, ratio=ratio))
    for algo in ("ippo", "mappo"):
        for seed in (0, 1):
            runs.append(write_run(tmp_path / "runs", f"{algo}_3m_s{seed}", algo=algo, env="3m",
                                  seed=seed, num_agents=3, wins=True))
    return runs


def assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


MULTI_RUN = sorted(set(pl.FIGURES) - {"learning-curve"})


@pytest.mark.parametrize("name", MULTI_RUN)
def test_every_figure_writes_png(sweep, tmp_path, name):
    out = tmp_path / "figs" / f"{name}.png"
    got = pl.FIGURES[name](sweep, out)
    assert got == out
    assert_png(out)


def test_figures_registry():
    assert set(pl.FIGURES) == {
        "ratio-range", "tv-cdf", "returns-tv", "joint-vs-independent", "ippo-vs-mappo", "learning-curve", "curves"
    }
    assert all(callable(f) for f in pl.FIGURES.values())


def test_root_folder_is_searched_and_options(sweep, tmp_path):
    root = sweep[0].parent
    assert len(rn.find_runs([root])) == len(sweep)
    assert_png(pl.plot_ratio_range([root], tmp_path / "a.png", update="first"))
    assert_png(pl.plot_ratio_range(sweep[:4], tmp_path / "b.png", update=2, facet=None))
    assert_png(pl.plot_tv_cdf(sweep[:8], tmp_path / "c.png", source="trust_region"))
    assert_png(pl.plot_returns_and_tv(sweep[:8], tmp_path / "d.png", tv_col="joint_tv_bound"))
    assert_png(pl.plot_joint_vs_independent(sweep[:8], tmp_path / "e.png", tv_col="joint_kl"))


def test_learning_curve(tmp_path):
    run = write_run(tmp_path, "one", wins=False)
    assert_png(pl.plot_learning_curve(run, tmp_path / "lc.png"))
    run2 = write_run(tmp_path, "two", wins=True)
    assert_png(pl.plot_learning_curve(str(run2), tmp_path / "sub" / "lc2.png"))
    assert_png(pl.FIGURES["learning-curve"]([run2], tmp_path / "lc3.png"))
    one_line_error(pl.FIGURES["learning-curve"], [run, run2], tmp_path / "x.png", match="exactly one run")


def test_seed_column_splits_curves(tmp_path):
    multi = write_run(tmp_path / "runs", "vmapped", seeds_in_run=3, seed=7)
    other = write_run(tmp_path / "runs", "single", seed=8)
    x, mean, std, n = rn._aggregate(rn.find_runs([multi, other]), "metrics", "env_steps", "return_mean")
    assert n == 4 and len(x) == 6 and np.all(np.diff(x) > 0)
    assert_png(pl.plot_learning_curve(multi, tmp_path / "lc.png"))
    for name in MULTI_RUN:
        assert_png(pl.FIGURES[name]([multi, other], tmp_path / f"{name}.png"))


def test_seeds_on_different_grids_are_interpolated(tmp_path):
    a = write_run(tmp_path, "a", seed=0, steps_per_update=1000, updates=6)
    b = write_run(tmp_path, "b", seed=1, steps_per_update=1500, updates=5)
    runs = rn.find_runs([a, b])
    x, mean, std, n = rn._aggregate(runs, "metrics", "env_steps", "return_mean")
    assert n == 2 and x[0] >= 1500 and x[-1] <= 6000
    assert np.all(np.isfinite(mean)) and np.all(std >= 0)
    # win rate all empty -> no data, curve skipped
    c = write_run(tmp_path, "c", wins=False)
    assert rn._aggregate(rn.find_runs([c]), "metrics", "env_steps", "win_rate") is None
    assert math.isnan(rn.load_run(c).column("metrics", "win_rate")[0])


def test_virtual_keys_and_grouping(tmp_path):
    a = write_run(tmp_path, "a", clip_eps=0.2)
    cfg = json.loads((a / "config.json").read_text())
    cfg |= {"env": "smax", "map": "3s5z", "clip_alpha": 0.5, "clip_eps_effective": 0.5 / 3}
    (a / "config.json").write_text(json.dumps(cfg))
    run = rn.load_run(a)
    assert run.get("task") == "3s5z" and run.get("clip") == pytest.approx(0.5 / 3)
    assert run.get("ppo.epochs") == 4 and run.get("ppo.missing", 1) == 1
    b = write_run(tmp_path, "b", env="mpe_spread", clip_eps=0.2)
    cfg = json.loads((b / "config.json").read_text()) | {"map": "3m", "no_clip": True}
    (b / "config.json").write_text(json.dumps(cfg))
    assert rn.load_run(b).get("task") == "mpe_spread" and rn.load_run(b).get("clip") == "none"
    # runs differing in an identity key are not averaged together even if group_by omits it
    c = write_run(tmp_path, "c", algo="mappo", seed=3)
    d = write_run(tmp_path, "d", algo="ippo", seed=4)
    runs = rn.find_runs([c, d])
    assert rn._curve_keys(runs, ("clip",)) == ("clip", "algo")
    assert_png(pl.plot_returns_and_tv([a, b, c, d], tmp_path / "mixed.png"))


def one_line_error(fn, *args, match: str, **kw):
    with pytest.raises(rn.PlotInputError) as err:
        fn(*args, **kw)
    msg = str(err.value)
    assert "\n" not in msg and match in msg, msg
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("name", sorted(pl.FIGURES))
def test_no_runs_is_an_error(tmp_path, name):
    one_line_error(pl.FIGURES[name], [], tmp_path / "x.png", match="no run directories")


def test_bad_inputs(tmp_path):
    run = write_run(tmp_path, "r")
    out = tmp_path / "x.png"
    one_line_error(pl.plot_returns_and_tv, [tmp_path / "nope"], out, match="no such run directory")
    one_line_error(pl.plot_ratio_range, [run], out, match="update=99", update=99)
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(pl.plot_tv_cdf, [empty], out, match="no run folder")
    (run / "trust_region.csv").unlink()
    one_line_error(pl.plot_ratio_range, [run], out, match="trust_region.csv: file missing")
    (run / "metrics.csv").write_text("update,env_steps\n0,10\n")
    one_line_error(pl.plot_returns_and_tv, [run], out, match="missing column 'return_mean'")
    one_line_error(pl.plot_tv_cdf, [run], out, match="missing column 'sum_tv'")
    (run / "metrics.csv").write_text("update,env_steps,return_mean\n")
    one_line_error(pl.plot_learning_curve, run, out, match="no rows")
    (run / "config.json").write_text("{not json")
    one_line_error(pl.plot_learning_curve, run, out, match="invalid JSON")
    (run / "config.json").unlink()
    one_line_error(pl.plot_learning_curve, run, out, match="config.json: file missing")
    one_line_error(pl.plot_tv_cdf, [tmp_path], out, match="no run folder", source="metrics")
    one_line_error(pl.plot_tv_cdf, [tmp_path], out, match="allowed", source="bogus")
    assert not out.exists()


def test_colours_distinct_within_each_panel_and_panels_by_team_size(tmp_path, monkeypatch):
    # Fig. 3's shape: 6 clip values on a 5-agent and a 10-agent map = 12 (clip, N) groups, more than the
    # 10-colour palette; the agent count follows the panel, so only the clip value may pick the colour.
    runs = [write_run(tmp_path, f"{m}_{c}", env=m, clip_eps=c, num_agents=n)
            for m, n in (("10m_vs_11m", 10), ("2s3z", 5)) for c in (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)]
    found = rn.find_runs(runs)
    facets = rn._facets(found, "task")
    assert [f[0] for f in facets] == [("2s3z",), ("10m_vs_11m",)]  # 5 agents before 10
    keys = rn._curve_keys(found, ("clip",), "task")
    colours = pl._colors(found, keys, facets)
    for _, frun in facets:
        in_panel = [colours[g] for g, _ in rn._group(frun, keys)]
        assert len(in_panel) == 6 and len(set(in_panel)) == 6
    drawn = _capture_figure(monkeypatch)
    out = pl.plot_returns_and_tv(runs, tmp_path / "fig3.png")
    assert_png(out)
    # the agent count follows the panel (it is in the title), so the labels name only the clip value
    labels = [t.get_text() for t in drawn[0].axes[0].get_legend().get_texts()]
    assert labels == ["clip 0.05", "clip 0.1", "clip 0.2", "clip 0.3", "clip 0.5", "clip 1.0"]


def _capture_figure(monkeypatch):
    """Keep the matplotlib Figure a plot function saves, to check what it drew."""
    drawn = []
    real = pl._save
    monkeypatch.setattr(pl, "_save", lambda fig, out: (drawn.append(fig), real(fig, out))[1])
    return drawn


def test_fig10_rows_draw_only_the_win_rate(sweep, tmp_path, monkeypatch):
    drawn = _capture_figure(monkeypatch)
    assert_png(pl.plot_joint_vs_independent(sweep[:8], tmp_path / "f10.png", rows=("win_rate",)))
    axes = [ax for ax in drawn[-1].axes if ax.get_lines()]
    assert len(axes) == 2  # one panel per clip value (0.1, 0.3)
    assert {ax.get_ylabel() for ax in axes} == {"win rate"}
    assert all(len(ax.get_lines()) == 2 for ax in axes)  # joint and independent
    with pytest.raises(rn.PlotInputError, match="rows is empty"):
        pl.plot_joint_vs_independent(sweep[:8], tmp_path / "g.png", rows=())
    # two maps: one metric on a (clip down) x (map across, fewer agents first) grid
    two = [write_run(tmp_path / "two", f"{m}_{r}_{c}", env=m, num_agents=n, clip_eps=c, ratio=r)
           for m, n in (("27m_vs_30m", 27), ("10m_vs_11m", 10)) for c in (0.1, 0.5) for r in ("independent", "joint")]
    pl.plot_joint_vs_independent(two, tmp_path / "h.png", rows=("win_rate",))
    grid = np.asarray(drawn[-1].axes).reshape(2, 2)
    assert [[ax.get_title() for ax in row] for row in grid] == [
        ["10m_vs_11m, clip 0.1", "27m_vs_30m, clip 0.1"], ["10m_vs_11m, clip 0.5", "27m_vs_30m, clip 0.5"]]


def test_fig7_tv_cdf_curves_per_epoch_count(tmp_path, monkeypatch):
    runs = [write_run(tmp_path, f"e{e}", epochs=e, extra_config={"update_epochs": e}) for e in (5, 10)]
    drawn = _capture_figure(monkeypatch)
    assert_png(pl.plot_tv_cdf(runs, tmp_path / "f7.png", source="trust_region"))
    labels = sorted(t.get_text() for t in drawn[-1].axes[1].get_legend().get_texts())
    assert labels == ["epochs 10", "epochs 5"]
