"""The paper-experiment plans: budgets, maps, clip values, validation (no training here)."""
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
