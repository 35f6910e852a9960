"""The paper-experiment plans: budgets, maps, clip values, validation (no training here)."""
import pytest

from trustmarl import reproduce
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
    # jrppo's SMAX preset sizes ε as α/N; Fig. 9 compares both ratio kinds at the same ε
    for name, cfg in reproduce.plan("sun2022-fig9").items():
        c = Config.build(cfg)
        eps = float(name.rsplit("clip", 1)[1])
        assert c.derived(10)["clip_eps"] == pytest.approx(eps), name
        assert not c.value_clip
