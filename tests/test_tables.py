"""trustmarl.analysis.tables (IQM, bootstrap intervals, seed scores, tables), `trustmarl table` and
`trustmarl plot curves`, against hand-computed numbers and hand-written run folders."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from trustmarl.analysis import tables as tb
from trustmarl.analysis.runs import PlotInputError, find_runs, varying_keys
from trustmarl.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run(root: Path, name: str, returns: dict[int, list[float]], **config) -> Path:
    """A run folder as the run loop writes it: config.json and metrics.csv with one row per (seed, update).
    ``returns``: seed -> return_mean per update (NaN: no episode ended in that update)."""
    run = root / name
    run.mkdir(parents=True)
    cfg = {"algo": "ippo", "env": "mpe_spread", "seed": 0, "num_seeds": len(returns), "run_name": name,
           "out_dir": str(root), "lr": 1e-3, "derived": {"num_updates": 5}, "clip_eps_effective": 0.2, **config}
    (run / "config.json").write_text(json.dumps(cfg))
    updates = len(next(iter(returns.values())))
    with (run / "metrics.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seed", "update", "env_steps", "return_mean", "win_rate"])
        for u in range(updates):
            for s, ys in returns.items():
                w.writerow([s, u + 1, 100 * (u + 1), "" if math.isnan(ys[u]) else ys[u], 0.5])
    return run


# --------------------------------------------------------------------------------------------
# statistics, by hand
# --------------------------------------------------------------------------------------------


def test_iqm_by_hand():
    assert tb.iqm([1, 2, 3, 4]) == pytest.approx(2.5)                 # n=4: drop 1 each end, mean(2, 3)
    assert tb.iqm([100, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)   # n=8: sorted, drop 2 each end: mean(3..6)
    assert tb.iqm([1, 2, 9]) == pytest.approx(4.0)                    # n=3: nothing dropped: the mean
    assert tb.iqm([5.0]) == pytest.approx(5.0)
    # n=5: k=1: mean of the middle three
    assert tb.iqm([10, 0, 1, 2, 3]) == pytest.approx(2.0)
    # vectorised along an axis
    np.testing.assert_allclose(tb.iqm(np.array([[1, 2, 3, 4], [4, 4, 0, 8]]), axis=-1), [2.5, 4.0])
    with pytest.raises(ValueError):
        tb.iqm([])


def test_iqm_matches_scipy_trim_mean():
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(0).normal(size=(17,))
    assert tb.iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25))


def test_iqm_matches_rliable():
    rliable = pytest.importorskip("rliable.metrics", reason="rliable is not a dependency; cross-check only")
    x = np.random.default_rng(1).normal(size=(10, 1))  # runs x tasks, as rliable takes them
    assert tb.iqm(x.ravel()) == pytest.approx(rliable.aggregate_iqm(x))


def test_bootstrap_interval_by_hand():
    # Means of two draws from {0, 1}: 0 (p 1/4), 0.5 (p 1/2), 1 (p 1/4); 2.5 and 97.5 percentiles: 0 and 1.
    assert tb.bootstrap_ci(np.array([0.0, 1.0]), reps=4000) == (0.0, 1.0)
    # constant scores and a single score: a degenerate interval at the value
    assert tb.bootstrap_ci(np.array([3.0, 3.0, 3.0])) == (3.0, 3.0)
    assert tb.bootstrap_ci(np.array([7.0])) == (7.0, 7.0)
    # reproducible for a seed
    x = np.random.default_rng(2).normal(size=12)
    assert tb.bootstrap_ci(x, seed=5) == tb.bootstrap_ci(x, seed=5)
    with pytest.raises(ValueError):
        tb.bootstrap_ci(x, conf=1.0)
    with pytest.raises(ValueError):
        tb.bootstrap_ci(x, reps=0)
    assert all(math.isnan(v) for v in tb.bootstrap_ci(np.zeros(0)))


def test_stratified_bootstrap_resamples_within_strata():
    # Strata [0, 0] and [1, 1]: every stratified replicate pools [0, 0, 1, 1], whose IQM is 0.5 exactly.
    assert tb.stratified_bootstrap_ci([np.zeros(2), np.ones(2)], tb.iqm) == (0.5, 0.5)
    # The same four scores as one stratum: replicates like [0, 0, 0, 1] move the IQM off 0.5.
    lo, hi = tb.bootstrap_ci(np.array([0.0, 0.0, 1.0, 1.0]), tb.iqm)
    assert lo < 0.5 < hi
    # A sure bound: the interval of the mean lies inside [min, max] of the scores.
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    lo, hi = tb.bootstrap_ci(x)
    assert 1.0 <= lo <= x.mean() <= hi <= 16.0


def test_window_parsing():
    assert tb.parse_window("last:10") == tb.Window(10)
    assert tb.parse_window("final") == tb.Window(1)
    assert tb.parse_window("all") == tb.Window(None)
    assert str(tb.parse_window("LAST:3")) == "last:3"
    for bad in ("last:0", "last:x", "first:3", "last", "10"):
        with pytest.raises(ValueError, match="last:K"):
            tb.parse_window(bad)


def test_metric_aliases():
    assert tb.metric_column("return") == "return_mean"
    assert tb.metric_column("win") == "win_rate"
    assert tb.metric_column("sum_tv") == "sum_tv"


# --------------------------------------------------------------------------------------------
# seed scores and grouping
# --------------------------------------------------------------------------------------------


def test_seed_scores_window(tmp_path):
    run = write_run(tmp_path, "r", {0: [1, 2, 3, 4, 5], 1: [10, 20, math.nan, 40, 50]})
    r = find_runs([run])[0]
    np.testing.assert_allclose(tb.seed_scores(r, "return", "last:2"), [4.5, 45.0])
    # a NaN update is skipped: seed 1's last three finite values are 20, 40, 50
    np.testing.assert_allclose(tb.seed_scores(r, "return", "last:3"), [4.0, 110 / 3])
    np.testing.assert_allclose(tb.seed_scores(r, "return", "final"), [5.0, 50.0])
    np.testing.assert_allclose(tb.seed_scores(r, "return", "all"), [3.0, 30.0])
    with pytest.raises(PlotInputError, match="missing column 'nope'"):
        tb.seed_scores(r, "nope")


def test_default_grouping_is_everything_but_the_seed(tmp_path):
    # two folders of one config that differ in seed (and run_name/out_dir): pooled; another lr: its own group
    write_run(tmp_path, "a0", {0: [1, 1], 1: [3, 3]}, seed=0)
    write_run(tmp_path, "a1", {0: [5, 5]}, seed=7)
    write_run(tmp_path, "b", {0: [2, 2], 1: [4, 4]}, lr=3e-4)
    runs = find_runs([tmp_path])
    assert varying_keys(runs) == ["lr"]
    keys, groups = tb.aggregate([tmp_path], "return", "last:1")
    assert keys == ("lr",)
    assert [g[0] for g in groups] == [(3e-4,), (1e-3,)]
    np.testing.assert_allclose(sorted(groups[1][1]), [1, 3, 5])
    np.testing.assert_allclose(sorted(groups[0][1]), [2, 4])


def test_table_markdown_and_csv_by_hand(tmp_path):
    write_run(tmp_path, "a", {0: [0, 1], 1: [0, 3], 2: [0, 5], 3: [0, 100]}, algo="ippo")
    write_run(tmp_path, "b", {0: [0, 2], 1: [0, 2]}, algo="mappo")
    t = tb.make_table([tmp_path], "return", "final", digits=2)
    md = t.markdown()
    assert md.splitlines()[0] == "return_mean, last:1 updates per seed"
    assert "| algo | n | mean ± std | 95% CI (mean) | IQM | 95% CI (IQM) |" in md
    # ippo: scores 1, 3, 5, 100: mean 27.25, population std 42.1, IQM mean(3, 5) = 4
    std = float(np.std([1, 3, 5, 100]))
    row = next(line for line in md.splitlines() if line.startswith("| ippo |"))
    assert row.startswith(f"| ippo | 4 | 27.25 ± {std:.2f} | [")
    assert row.split(" | ")[4] == "4.00"
    assert "| mappo | 2 | 2.00 ± 0.00 | [2.00, 2.00] | 2.00 | [2.00, 2.00] |" in md
    recs = list(csv.DictReader(io.StringIO(t.csv())))
    assert [r["algo"] for r in recs] == ["ippo", "mappo"]
    assert float(recs[0]["mean"]) == pytest.approx(27.25)
    assert float(recs[0]["std"]) == pytest.approx(std)
    assert float(recs[0]["iqm"]) == pytest.approx(4.0)
    assert recs[0]["n"] == "4" and recs[0]["window"] == "last:1" and recs[0]["metric"] == "return_mean"
    lo, hi = float(recs[0]["ci_low"]), float(recs[0]["ci_high"])
    assert 1 <= lo < 27.25 < hi <= 100


def test_table_pivot_columns(tmp_path):
    for algo, env, ys in (("ippo", "e1", [1, 3]), ("ippo", "e2", [10, 10]), ("mappo", "e1", [4, 4]),
                          ("mappo", "e2", [0, 2])):
        write_run(tmp_path, f"{algo}_{env}", {0: [ys[0]], 1: [ys[1]]}, algo=algo, env=env)
    t = tb.make_table([tmp_path], "return", "final", by=["algo", "env"], columns="env", digits=1)
    md = t.markdown()
    assert "| algo | e1 | e2 | IQM over env [95% CI] |" in md
    # best per column in bold: e1 -> mappo (4.0), e2 -> ippo (10.0)
    assert "| ippo | 2.0 ± 1.0 | **10.0 ± 0.0** | " in md
    assert "| mappo | **4.0 ± 0.0** | 1.0 ± 1.0 | " in md
    # the last column: IQM of the row's pooled scores with a stratified interval; ippo: 1, 3, 10, 10 -> 6.5
    ippo = next(line for line in md.splitlines() if line.startswith("| ippo |"))
    assert ippo.split(" | ")[-1].startswith("6.5 [")
    assert len(list(csv.DictReader(io.StringIO(t.csv())))) == 4


def test_table_errors(tmp_path):
    write_run(tmp_path, "a", {0: [1.0]})
    with pytest.raises(PlotInputError, match="no run has data for metric 'win_rat'"):
        tb.make_table([tmp_path], "win_rat")
    with pytest.raises(ValueError, match="last:K"):
        tb.make_table([tmp_path], "return", "last:-1")
    with pytest.raises(PlotInputError, match="no such run directory"):
        tb.make_table([tmp_path / "missing"])


def test_cli_table(tmp_path, capsys):
    write_run(tmp_path, "a", {0: [1, 2], 1: [3, 4]}, algo="ippo")
    write_run(tmp_path, "b", {0: [5, 6], 1: [7, 8]}, algo="mappo")
    out_csv = tmp_path / "out" / "t.csv"
    assert main(["table", str(tmp_path), "--metric", "return", "--window", "last:1", "--csv", str(out_csv),
                 "--digits", "1"]) == 0
    text = capsys.readouterr().out
    assert "| ippo | 2 | 3.0 ± 1.0 |" in text and "| mappo | 2 | 7.0 ± 1.0 |" in text
    assert f"wrote {out_csv}" in text
    assert [r["algo"] for r in csv.DictReader(out_csv.open())] == ["ippo", "mappo"]
    assert main(["table", str(tmp_path), "--window", "first:2"]) == 2
    assert "window 'first:2' is not last:K" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# learning curves
# --------------------------------------------------------------------------------------------


def test_plot_curves(tmp_path, capsys):
    write_run(tmp_path, "a", {0: [1, 2, 3], 1: [2, 3, 4]}, algo="ippo")
    write_run(tmp_path, "b", {0: [0, 1, 1], 1: [1, 1, 2], 2: [0, 0, 5]}, algo="mappo")
    for words in (["group_by=algo", "spread=ci"], ["center=iqm", "spread=minmax", "smooth=2"],
                  ["metric=return,win", "spread=none"]):
        out = tmp_path / f"curves_{len(words)}_{words[0]}.png"
        assert main(["plot", "curves", str(tmp_path), "--out", str(out), "--set", *words]) == 0, capsys.readouterr()
        assert out.read_bytes()[:8] == PNG_MAGIC
    assert main(["plot", "curves", str(tmp_path), "--out", str(tmp_path / "x.png"), "--set", "spread=wide"]) == 2
    assert "spread 'wide' is invalid" in capsys.readouterr().err


def test_smooth_is_a_trailing_mean():
    from trustmarl.analysis.figures import _smooth
    np.testing.assert_allclose(_smooth(np.array([[0.0, 2.0, 4.0, 6.0]]), 2), [[0.0, 1.0, 3.0, 5.0]])
    np.testing.assert_allclose(_smooth(np.array([[1.0, 2.0]]), 1), [[1.0, 2.0]])
