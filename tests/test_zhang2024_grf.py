"""``trustmarl reproduce zhang2024-grf`` (Zhang et al. 2024, Fig. 5 on GRF): the plan without training, the
figure and tables from stand-in runs, and one tiny real B2MAPO run on academy_counterattack_easy through the
host path (skipped, with the reason, only when gfootball is not installed)."""
from __future__ import annotations

import csv
import json
import math

import pytest

from trustmarl.analysis import reproduce
from trustmarl.config import Config
from trustmarl.envs.grf import gfootball_available

ALGOS = {"mappo", "happo", "a2po", "b2mapo"}


def test_plan_runs_four_algorithms_on_both_scenarios_one_run_per_seed():
    plan = reproduce.plan("zhang2024-grf", budget=0.001, seeds=3)
    assert len(plan) == 4 * 2 * 3
    for a in ALGOS:
        for s, full in (("easy", 25_000_000), ("hard", 50_000_000)):
            for k in range(3):
                cfg = plan[f"{a}_counterattack_{s}_seed{k}"]
                assert cfg["algo"] == a and cfg["env"] == f"grf_counterattack_{s}"
                assert cfg["seed"] == k and cfg["num_seeds"] == 1  # host path: one seed per process
                assert cfg["total_env_steps"] == full // 1000  # budget 0.001 of HARL's 2.5e7 / 5e7
                c = Config.build(cfg)
                assert not c.share_params  # §5: parameter-independent in GRF
                assert json.loads(c.env_options) == {"rewards": "scoring,checkpoints"}
                assert c.num_envs == 8 and c.derived(4).steps_per_update == 8 * 128
    # a budget below one update still runs one update
    tiny = reproduce.plan("zhang2024-grf", budget=1e-7, only=["mappo_counterattack_easy"])
    assert tiny == {"mappo_counterattack_easy": {**tiny["mappo_counterattack_easy"], "total_env_steps": 1024}}


def test_plan_rejects_bad_seeds_budgets_and_patterns():
    with pytest.raises(ValueError, match="seeds=0 must be an integer >= 1"):
        reproduce.plan("zhang2024-grf", seeds=0)
    with pytest.raises(ValueError, match="seeds=2.5 must be an integer >= 1"):
        reproduce.plan("zhang2024-grf", seeds=2.5)
    with pytest.raises(ValueError, match="budget=1.5 must be in"):
        reproduce.plan("zhang2024-grf", budget=1.5)
    with pytest.raises(ValueError, match="only=\\*_corner matches no run of zhang2024-grf"):
        reproduce.plan("zhang2024-grf", only=["*_corner"])


def _fake_host_train(calls):
    """Stand-in for one host-path run: seed k of algorithm a wins 0.1 k (+ 0.5 for b2mapo) and returns k at
    every one of 5 updates."""
    def train(config, run_dir):
        calls.append(config.run_name)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), default=str))
        win = 0.1 * config.seed + (0.5 if config.algo == "b2mapo" else 0.0)
        with (run_dir / "metrics.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["seed", "update", "env_steps", "return_mean", "win_rate"])
            for u in range(5):
                w.writerow([config.seed, u, (u + 1) * 1024, float(config.seed), win])
        summary = {"final_return": float(config.seed), "final_win_rate": win, "env_steps_per_s": 1.0}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        return summary
    return train


def test_reproduce_draws_win_rate_curves_and_tables_over_seed_folders(tmp_path, monkeypatch):
    from trustmarl import runtime as run
    calls = []
    monkeypatch.setattr(run, "train", _fake_host_train(calls))
    png = reproduce.reproduce("zhang2024-grf", tmp_path, budget=1e-4, seeds=3)
    root = tmp_path / "zhang2024-grf"
    assert png == root / "zhang2024-grf.png" and png.stat().st_size > 1000
    assert sorted(calls) == sorted(reproduce.plan("zhang2024-grf", 1e-4, 3))
    text = (root / "zhang2024-grf.md").read_text()
    win, ret = text.split("return_mean, tail:0.2")
    assert "win_rate, tail:0.2" in win
    # the three seed folders pooled: wins 0, 0.1, 0.2 -> 0.10 ± 0.08 (std ddof 0: sqrt(2/3) 0.1); b2mapo +0.5
    rows = {line.split("|")[1].strip(): line for line in win.splitlines() if line.startswith("| ")}
    assert rows["mappo"].count(f"0.10 ± {math.sqrt(2 / 3) * 0.1:.2f}") == 2  # both scenarios
    assert rows["b2mapo"].count("**0.60 ± 0.08**") == 2  # best per column in bold
    rows = {line.split("|")[1].strip(): line for line in ret.splitlines() if line.startswith("| ")}
    assert all(rows[a].count(f"1.00 ± {math.sqrt(2 / 3):.2f}") == 2 for a in ALGOS)  # returns 0, 1, 2
    calls.clear()
    reproduce.reproduce("zhang2024-grf", tmp_path, budget=1e-4, seeds=3)
    assert calls == []  # finished seed folders are kept


needs_gfootball = pytest.mark.skipif(
    not gfootball_available(),
    reason="gfootball is not installed (bash scripts/install_gfootball.sh installs it; CI does)")


@needs_gfootball
def test_b2mapo_trains_on_grf_through_the_reproduce_command(tmp_path):
    """Two real updates of B2MAPO on the host path, from the plan to the run folder, figure and table. The
    second rollout is sampled batch level by batch level (the DAG of the first update has several levels, π
    reads the preceding batches' actions), and the inputs and log-probabilities the host stored give the
    policy back: every agent's ratio starts at 1 (agents of later batches within 1e-2: their π already moved
    with the preceding batches' updates, by 0.9993-1.0009 on the JAX path too, MPE spread with 4 agents)."""
    sets = dict(num_envs=1, rollout_length=128, update_epochs=1, num_minibatches=1, hidden=(8, 8),
                total_env_steps=256, measure_trust_region=False)
    reproduce.reproduce("zhang2024-grf", tmp_path, seeds=1, overrides=sets, only=["b2mapo_counterattack_easy"])
    root = tmp_path / "zhang2024-grf"
    run_dir = root / "b2mapo_counterattack_easy"
    info = json.loads((run_dir / "config.json").read_text())
    assert info["algo"] == "b2mapo" and info["preceding_actions"] and not info["share_params"]
    assert info["env_spec"]["has_win"] and info["num_agents"] == 4
    with (run_dir / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(float(r["env_steps"])) for r in rows] == [128, 256]
    assert float(rows[0]["dag_batches"]) == 1 and float(rows[1]["dag_batches"]) >= 2
    for r in rows:
        for i in range(4):
            assert abs(float(r[f"ratio_min_{i}"]) - 1) < 1e-2 and abs(float(r[f"ratio_max_{i}"]) - 1) < 1e-2
            assert float(r[f"clip_frac_{i}"]) == 0
        for k in ("policy_loss", "value_loss"):
            assert math.isfinite(float(r[k])), k
        win = r["win_rate"]  # empty or nan when no episode ended in the update
        assert win in ("", "nan") or 0 <= float(win) <= 1
    assert (root / "zhang2024-grf.png").is_file() and "b2mapo" in (root / "zhang2024-grf.md").read_text()
