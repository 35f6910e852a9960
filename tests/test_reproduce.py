"""The paper-experiment plans: budgets, maps, clip values, validation (no training here)."""
import math

import numpy as np
import pytest

from trustmarl.analysis import reproduce
from trustmarl.config import Config


def test_every_experiment_plans_valid_configs():
    for name in reproduce.EXPERIMENTS:
        plan = reproduce.plan(name, budget=0.01)
        assert plan, name
        for cfg in plan.values():
            Config.build(cfg)  # raises on any invalid value


def test_fig3_covers_clip_values_and_scales_budget():
    plan = reproduce.plan("sun2022-fig3", budget=0.01)
    clips = {c.get("clip_eps") if not c.get("no_clip") else None for c in plan.values()}
    assert clips == {0.05, 0.1, 0.3, 0.5, 1.0, 0.2} - {0.2} | {None}
    assert all(c["total_env_steps"] == 100_000 for c in plan.values())
    assert {c["map"] for c in plan.values()} == {"2s3z", "10m_vs_11m"}


def test_fig4_maps_span_3_to_27_agents_and_fig9_compares_ratios():
    plan = reproduce.plan("sun2022-fig4")
    assert {c["map"] for c in plan.values()} == set(reproduce.MAPS_BY_AGENTS.values())
    assert {c["algo"] for c in plan.values()} == {"ippo", "mappo"}
    ratios = {Config.build(c).ratio for c in reproduce.plan("sun2022-fig9").values()}
    assert ratios == {"independent", "joint"}


def test_one_update_experiments_are_not_scaled():
    a = reproduce.plan("sun2022-fig2", budget=0.001)
    assert all(c["update_epochs"] == 100 and c["total_env_steps"] == 32 * 128 for c in a.values())


def test_bad_names_and_budgets():
    with pytest.raises(ValueError, match="experiment 'fig99' is unknown"):
        reproduce.plan("fig99")
    with pytest.raises(ValueError, match="budget=2.0 must be in"):
        reproduce.plan("sun2022-fig3", budget=2.0)


def test_fig9_runs_use_the_clip_value_in_their_name():
    # Fig. 9 compares both ratio kinds at the same ε (A.6), whatever the agent count
    for name, cfg in reproduce.plan("sun2022-fig9").items():
        c = Config.build(cfg)
        eps = float(name.rsplit("clip", 1)[1])
        assert c.derived(10).clip_eps == pytest.approx(eps), name
        assert not c.value_clip


def test_appendix_figure_plans():
    f7 = reproduce.plan("sun2022-fig7", budget=0.001)  # not scaled: ten updates whatever the budget
    assert {c["update_epochs"] for c in f7.values()} == {5, 10, 15, 20}
    assert all(c["clip_eps"] == 0.1 and c["total_env_steps"] == 10 * 32 * 128 for c in f7.values())
    f8 = reproduce.plan("sun2022-fig8", budget=0.01)
    assert {c["clip_eps"] for c in f8.values()} == {0.01, 0.03, 0.05, 0.08}
    assert {c["map"] for c in f8.values()} == {"2s3z", "3s5z", "10m_vs_11m", "27m_vs_30m"}
    assert all(not c["value_clip"] for c in f8.values())
    assert reproduce.plan("sun2022-fig10", budget=0.02) == reproduce.plan("sun2022-fig9", budget=0.02)
    f4 = reproduce.plan("sun2022-fig4")
    f5, f6 = reproduce.plan("sun2022-fig5"), reproduce.plan("sun2022-fig6")
    assert f5.keys() | f6.keys() == f4.keys() and not f5.keys() & f6.keys()
    assert {c["algo"] for c in f5.values()} == {"mappo"} and {c["algo"] for c in f6.values()} == {"ippo"}


def _fake_train(calls):
    """Stand-in for trustmarl.runtime.train: writes a run folder (config, metrics, trust region) without training."""
    import csv
    import json

    def train(config, run_dir):
        calls.append(config.run_name)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), default=str))
        cols = ["update", "env_steps", "return_mean", "win_rate", "sum_tv", "joint_tv_bound", "tv_0", "tv_1"]
        for table, extra in (("metrics.csv", []), ("trust_region.csv", ["epoch"])):
            with (run_dir / table).open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(cols + extra)
                for u in range(3):
                    w.writerow([u, (u + 1) * 100, u, u / 3, 0.1 * u, 0.1 * u, 0.05 * u, 0.05 * u] + [0] * len(extra))
        (run_dir / "summary.json").write_text(json.dumps({"final_return": 2.0, "final_win_rate": 0.5,
                                                          "env_steps_per_s": 1.0}))
        return {"final_return": 2.0, "final_win_rate": 0.5, "env_steps_per_s": 1.0}
    return train


def test_reproduce_runs_plans_keeps_finished_runs_and_fig10_reads_fig9(tmp_path, monkeypatch):
    from trustmarl import runtime as run
    calls = []
    monkeypatch.setattr(run, "train", _fake_train(calls))
    png = reproduce.reproduce("sun2022-fig9", tmp_path, budget=0.001)
    assert png == tmp_path / "sun2022-fig9" / "sun2022-fig9.png" and png.stat().st_size > 1000
    assert sorted(calls) == sorted(reproduce.plan("sun2022-fig9", budget=0.001))
    assert (tmp_path / "sun2022-fig9" / "sun2022-fig9.json").is_file()
    calls.clear()
    png10 = reproduce.reproduce("sun2022-fig10", tmp_path, budget=0.001)
    assert calls == []  # every run was done for Fig. 9 and is read, not rerun
    assert png10 == tmp_path / "sun2022-fig9" / "sun2022-fig10.png" and png10.is_file()
    assert not (tmp_path / "sun2022-fig10").exists()


def _fake_train_seeds(calls):
    """Stand-in trainer that writes ``num_seeds`` seeds per run folder (a ``seed`` column, as the trainer's
    vmapped runs do): seed s has return u + s at update u, ratio_max 1 + 0.1 (s + 1) and tv_i 0.01 (s + 1)."""
    import csv
    import json

    def train(config, run_dir):
        calls.append((config.run_name, config.num_seeds))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), default=str))
        cols = ["seed", "update", "env_steps", "return_mean", "win_rate", "sum_tv", "joint_tv_bound", "ratio_min",
                "ratio_max", "tv_0", "tv_1"]
        for table, epochs in (("metrics.csv", [None]), ("trust_region.csv", [1, 2])):
            with (run_dir / table).open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(cols + ([] if epochs == [None] else ["epoch"]))
                for s in range(config.num_seeds):
                    for u in range(3):
                        for e in epochs:
                            tv = 0.01 * (s + 1)
                            row = [s, u, (u + 1) * 100, u + s, 0.1 * s, 2 * tv, 2 * tv, 1 - 0.1 * (s + 1),
                                   1 + 0.1 * (s + 1), tv, tv]
                            w.writerow(row + ([] if e is None else [e]))
        summary = {"final_return": 2.0, "final_win_rate": 0.5, "env_steps_per_s": 1.0}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        return summary
    return train


@pytest.fixture
def drawn(monkeypatch):
    """Every figure drawn, by experiment name (the matplotlib Figure, captured as it is saved)."""
    from trustmarl import runtime as run
    from trustmarl.analysis import figures
    calls, figs = [], []
    save = figures._save
    monkeypatch.setattr(run, "train", _fake_train_seeds(calls))
    monkeypatch.setattr(figures, "_save", lambda fig, out: figs.append(fig) or save(fig, out))
    return calls, figs


def test_reproduce_seeds_draws_every_figure_as_mean_and_spread_over_seeds(tmp_path, drawn):
    """``reproduce(..., seeds=3)`` runs every configuration with num_seeds=3, and every figure labels its curves
    n=3 and draws a band over the seeds: on Fig. 3's return panel the line is the seeds' mean u + 1 and the
    band ± their std sqrt(2/3); on Fig. 1 the max-ratio line is 1.2 with a band of ± 0.1·sqrt(2/3)."""
    calls, figs = drawn
    for name in [n for n in reproduce.EXPERIMENTS if n.startswith("sun2022-")]:  # every figure kind
        figs.clear()
        reproduce.reproduce(name, tmp_path, budget=0.001, seeds=3)
        shared = reproduce.EXPERIMENTS[name].shares  # Fig. 5, 6, 10 draw runs made for Fig. 4 and 9
        assert (shared or calls) and all(n == 3 for _, n in calls), name
        (fig,) = figs
        labels = [line.get_label() for ax in fig.axes for line in ax.get_lines() if not line.get_label().startswith("_")]
        assert labels and all(label.endswith("(n=3)") for label in labels), (name, labels)
        assert any(ax.collections for ax in fig.axes), name  # the spread bands
        if name == "sun2022-fig3":
            ax = next(a for a in fig.axes if a.get_ylabel() == "return")
            line = ax.get_lines()[0]
            np.testing.assert_allclose(line.get_ydata(), [1.0, 2.0, 3.0])
            band = ax.collections[0].get_paths()[0].vertices[:, 1]
            assert band.max() == pytest.approx(3.0 + math.sqrt(2 / 3)) and band.min() == pytest.approx(1 - math.sqrt(2 / 3))
        if name == "sun2022-fig1":
            ax = fig.axes[0]
            np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1.2, 1.2])  # mean of 1.1, 1.2, 1.3
            spans = [c.get_paths()[0].vertices[:, 1] for c in ax.collections[:3]]
            widths = sorted(float(v.max() - v.min()) for v in spans)
            # extremes 0.7..1.3 (0.6 wide); ± std bands 2·0.1·sqrt(2/3) wide around 1.2 and 0.8
            assert widths == pytest.approx(sorted([0.6, 0.2 * math.sqrt(2 / 3), 0.2 * math.sqrt(2 / 3)]), abs=1e-6)
        calls.clear()


def test_cli_reproduce_takes_seeds(tmp_path, drawn):
    from trustmarl import cli
    calls, _ = drawn
    assert cli.main(["reproduce", "sun2022-fig7", "--seeds", "2", "--out", str(tmp_path)]) == 0
    assert len(calls) == 8 and {n for _, n in calls} == {2}
    assert cli.main(["reproduce", "sun2022-fig7", "--seeds", "0", "--out", str(tmp_path)]) == 2
