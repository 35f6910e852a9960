"""Google Research Football on the host path: episode-end rules (no gfootball needed) and a short training
smoke test of academy_counterattack_easy (skipped, with the reason, only when gfootball is not installed)."""
from __future__ import annotations

import math
import subprocess
import sys

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


# Run in a child process: starting a game installs gfootball's own SIGSEGV handler in the process
# (game_env.cpp: install_stacktrace), which prints a backtrace from inside the signal handler. Left in the test
# process it outlives the env, and a later fault anywhere in the suite (seen once: inside the C++ unwinder
# during an XLA compile) then deadlocks in that handler instead of failing; the host-path test below already
# keeps the engine in its spawned workers.
_ENV_CHECK = r"""
import numpy as np
from trustmarl.envs.grf import GRFParallelEnv

env = GRFParallelEnv("academy_counterattack_hard")
try:
    assert env.possible_agents == [f"player_{i}" for i in range(4)] and env.max_cycles == 400
    assert env.observation_space("player_0").shape == (115,) and env.action_space("player_0").n == 19
    obs, _ = env.reset(seed=1)
    assert all(o.shape == (115,) for o in obs.values())
    rng = np.random.default_rng(0)
    for _ in range(400):
        _, rew, term, trunc, infos = env.step({a: int(rng.integers(19)) for a in env.agents})
        assert len(set(rew.values())) == 1, rew  # shared team reward
        if not env.agents:
            break
    assert not env.agents and term["player_0"] != trunc["player_0"], (term, trunc)
    # an end before game_duration is always the task's doing
    if env._raw()["steps_left"] > 0:
        assert term["player_0"]
finally:
    env.close()
print("ENV_CHECK_OK")
"""


@needs_gfootball
def test_counterattack_env_spaces_and_episode_flags():
    r = subprocess.run([sys.executable, "-c", _ENV_CHECK], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ENV_CHECK_OK" in r.stdout, (r.stdout[-3000:] + r.stderr[-3000:])


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



_SEGV_CHECK = r"""
import ctypes, signal, sys


def disposition():
    buf = ctypes.create_string_buffer(512)
    assert ctypes.CDLL(None).sigaction(signal.SIGSEGV, None, buf) == 0
    return buf.raw[:8]  # the handler's address (sa_handler, first member on Linux)


from trustmarl.envs import grf
before = disposition()
if sys.argv[1] == "guarded":
    env = grf.GRFParallelEnv("academy_counterattack_easy")
    env.reset(seed=0)
else:  # gfootball itself, as a control: a fresh process starts a fresh engine
    from gfootball.env import create_environment
    env = create_environment(env_name="academy_counterattack_easy", representation="simple115v2",
                             number_of_left_players_agent_controls=1, render=False)
    env.reset()
print("SAME" if disposition() == before else "CHANGED")
env.close()
"""


@needs_gfootball
@pytest.mark.parametrize("how,expected", [("guarded", "SAME"), ("raw", "CHANGED")])
def test_building_an_env_keeps_the_process_segv_handler(how, expected):
    """gfootball's engine installs its own SIGSEGV handler when a game starts (the ``raw`` control, in a fresh
    process since gfootball reuses closed engines); trustmarl's env puts the process's back
    (``grf.keep_segv_handler``) so that a later fault is reported by faulthandler instead of deadlocking."""
    r = subprocess.run([sys.executable, "-c", _SEGV_CHECK, how], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == expected
