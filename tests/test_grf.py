"""Google Research Football on the host path: episode-end rules (no gfootball needed) and a short training
smoke test of academy_counterattack_easy (skipped, with the reason, only when gfootball is not installed)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from trustmarl.envs import grf
from trustmarl.envs.grf import GRFParallelEnv, gfootball_available, grf_env_fn

from conftest import tiny

needs_gfootball = pytest.mark.skipif(
    not gfootball_available(),
    reason="gfootball is not installed (bash scripts/install_gfootball.sh installs it; CI does)")


def _bare(prev_mode=0, prev_owner=0):
    """A GRFParallelEnv without an engine, to test the episode-end rules on hand-made raw observations."""
    env = object.__new__(GRFParallelEnv)
    env._ends = (True, True, True)
    env._prev_mode, env._prev_owner = prev_mode, prev_owner
    return env


def test_task_ends_mirror_gfootball_rules():
    def raw(mode=0, owner=0, score=(0, 0)):
        return {"game_mode": mode, "ball_owned_team": owner, "score": list(score)}

    assert _bare()._ended_by_task(raw(score=(1, 0)), 1.0)  # goal
    assert _bare()._ended_by_task(raw(mode=3), 0.0)  # out of play: Normal -> FreeKick
    assert not _bare(prev_mode=3)._ended_by_task(raw(mode=3), 0.0)  # already out of play before
    assert _bare(prev_owner=0)._ended_by_task(raw(owner=1), 0.0)  # possession change
    assert not _bare(prev_owner=0)._ended_by_task(raw(owner=-1), 0.0)  # loose ball is no change
    assert not _bare()._ended_by_task(raw(), 0.0)  # none of them: a done here is the time limit


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="scenario='academy_3_vs_1'"):
        grf_env_fn("academy_3_vs_1")
    with pytest.raises(ValueError, match="rewards='checkpoints'"):
        grf_env_fn(rewards="checkpoints")


def test_missing_gfootball_names_the_install_script(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_gfootball(name, *args, **kw):
        if name.startswith("gfootball"):
            raise ImportError("No module named 'gfootball'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_gfootball)
    with pytest.raises(ImportError, match="scripts/install_gfootball.sh"):
        GRFParallelEnv()
    assert not grf.gfootball_available()


@needs_gfootball
def test_counterattack_env_spaces_and_episode_flags():
    env = GRFParallelEnv("academy_counterattack_hard")
    try:
        assert env.possible_agents == [f"player_{i}" for i in range(4)] and env.max_cycles == 400
        assert env.observation_space("player_0").shape == (115,) and env.action_space("player_0").n == 19
        obs, _ = env.reset(seed=1)
        assert all(o.shape == (115,) for o in obs.values())
        rng = np.random.default_rng(0)
        for _ in range(400):
            _, rew, term, trunc, infos = env.step({a: int(rng.integers(19)) for a in env.agents})
            assert len(set(rew.values())) == 1  # shared team reward
            if not env.agents:
                break
        assert not env.agents and term["player_0"] != trunc["player_0"]
        # an end before game_duration is always the task's doing
        if env._raw()["steps_left"] > 0:
            assert term["player_0"]
    finally:
        env.close()


@needs_gfootball
def test_grf_counterattack_trains_on_the_host_path():
    from trustmarl.runtime.loop import host_train
    c = tiny(algo="mappo", network="ff", num_envs=4, rollout_length=64, update_epochs=1, num_minibatches=2,
             hidden=(16, 16), total_env_steps=4 * 64 * 2, progress=False, measure_trust_region=False)
    s = host_train(c, grf_env_fn("academy_counterattack_easy"))
    spec = s["spec"]
    assert len(spec["agents"]) == 4
    assert spec["obs_dim"] == 115 and spec["num_actions"] == 19 and spec["discrete"] and spec["has_win"]
    assert spec["episode_limit"] == 400
    m = s["metrics"]
    assert m["policy_loss"].shape == (2,) and m["entropy"].shape == (2, 4)
    for k in ("policy_loss", "value_loss", "entropy", "approx_kl"):
        assert np.isfinite(m[k]).all(), k
    # random play loses the ball quickly: 18% of its episodes last over 128 steps, so with 4 envs x 128
    # steps no episode ends with probability ~0.1%
    assert m["episodes"].sum() >= 1
    win = m["win_rate"][np.isfinite(m["win_rate"])]
    assert win.size and ((win >= 0) & (win <= 1)).all() and math.isfinite(s["final_return"])
