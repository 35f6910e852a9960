"""Host path: HostVectorEnv's layout and episode logic on a scripted ParallelEnv, and host_train end to end
on pursuit_v5 (discrete) and multiwalker_v9 (continuous) for every algorithm, feed-forward and GRU."""
from __future__ import annotations

import csv
import functools
import json
import math

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from trustmarl.algos import ALGORITHMS
from trustmarl.envs.host_vector import HostVectorEnv
from trustmarl.runtime.loop import host_train

from conftest import tiny


class Scripted(ParallelEnv):
    """Three agents with heterogeneous spaces and a fixed script, so every output can be checked exactly.

    * obs of agent i at step t of episode k: every entry ``100 k + 10 t + i`` (shapes (2,), (3,), (2, 2));
      actions Discrete(2), Discrete(3), Discrete(3); reward 1 to every agent that acts.
    * ``a1`` terminates at t = 2 every episode (leaves early; the others go on).
    * episode k % 3 == 0 ends by the task at t = 4 (terminations); k % 3 == 1 by the time limit at
      t = max_cycles = 5 (truncations); k % 3 == 2 at t = 5 with terminations and no truncation (as
      multiwalker_v9 does), which the host path must read as a truncation.
    """

    metadata = {"name": "scripted"}

    def __init__(self):
        self.possible_agents = ["a0", "a1", "a2"]
        self.max_cycles = 5
        self._obs_shapes = {"a0": (2,), "a1": (3,), "a2": (2, 2)}
        self._n_act = {"a0": 2, "a1": 3, "a2": 3}
        self.episode = -1
        self.sent = []  # action dicts received, to check that dead agents are not sent actions

    def observation_space(self, agent):
        return spaces.Box(-np.inf, np.inf, self._obs_shapes[agent], np.float32)

    def action_space(self, agent):
        return spaces.Discrete(self._n_act[agent])

    def _obs(self):
        return {a: np.full(self._obs_shapes[a], 100 * self.episode + 10 * self.t + i, np.float32)
                for i, a in enumerate(self.possible_agents) if a in self.agents}

    def reset(self, seed=None, options=None):
        self.episode += 1
        self.t = 0
        self.agents = list(self.possible_agents)
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        assert set(actions) == set(self.agents), (actions, self.agents)
        self.sent.append(dict(actions))
        self.t += 1
        kind = self.episode % 3
        obs = self._obs()
        rew = {a: 1.0 for a in self.agents}
        term = {a: False for a in self.agents}
        trunc = {a: False for a in self.agents}
        if self.t == 2:
            term["a1"] = True
        if kind == 0 and self.t == 4:
            term = {a: True for a in self.agents}
        if kind in (1, 2) and self.t == self.max_cycles:
            if kind == 1:
                trunc = {a: True for a in self.agents}
            else:
                term = {a: True for a in self.agents}
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rew, term, trunc, infos


def _val(k, t, i):
    return 100 * k + 10 * t + i


def test_spec_pads_heterogeneous_agents():
    with HostVectorEnv(Scripted, 1, async_=False) as env:
        s = env.spec
        assert s.agents == ("a0", "a1", "a2") and s.obs_dim == 4 and s.num_actions == 3 and s.discrete
        assert s.obs_dims == (2, 3, 4) and s.action_dims == (2, 3, 3) and s.episode_limit == 5
        assert s.state_dim == 3 * 4 + 3
        ts = env.reset()
        np.testing.assert_array_equal(ts.avail[0], [[1, 1, 0], [1, 1, 1], [1, 1, 1]])
        np.testing.assert_array_equal(ts.obs[0], [[0, 0, 0, 0], [1, 1, 1, 0], [2, 2, 2, 2]])
        # concat_obs state: own obs first, then the others in agent order, then the one-hot id
        np.testing.assert_array_equal(ts.state[0, 2], np.concatenate([ts.obs[0, 2], ts.obs[0, 0], ts.obs[0, 1],
                                                                      [0, 0, 1]]))


def test_scripted_episodes_terminated_truncated_active_final_obs():
    with HostVectorEnv(Scripted, 1, async_=False) as env:
        ts = env.reset()
        assert ts.active.all() and not ts.terminated.any() and not ts.truncated.any()
        seen = []
        for step in range(4 + 5 + 5):
            ts = env.step(np.zeros((1, 3), int))
            seen.append(ts)
        # episode 0: a1 terminates at t=2, the episode ends by the task at t=4
        t2, t3, t4 = seen[1], seen[2], seen[3]
        np.testing.assert_array_equal(t2.active[0], [True, False, True])
        np.testing.assert_array_equal(t2.reward[0], [1, 1, 1])  # a1 is rewarded on the step it leaves
        np.testing.assert_array_equal(t2.obs[0, 1], 0.0)  # and its observation is zero from then on
        assert not t2.terminated[0] and not t2.truncated[0] and not t2.episode.done[0]
        np.testing.assert_array_equal(t3.reward[0], [1, 0, 1])
        np.testing.assert_array_equal(t3.active[0], [True, False, True])
        np.testing.assert_array_equal(t3.state[0, 1, :-3], 0.0)  # dead agent's state: only its id
        np.testing.assert_array_equal(t3.state[0, 1, -3:], [0, 1, 0])
        assert t4.terminated[0] and not t4.truncated[0] and t4.episode.done[0]
        np.testing.assert_array_equal(t4.final_obs[0, 0], [_val(0, 4, 0)] * 2 + [0, 0])
        np.testing.assert_array_equal(t4.final_obs[0, 1], 0.0)
        np.testing.assert_array_equal(t4.obs[0, 0], [_val(1, 0, 0)] * 2 + [0, 0])  # auto-reset: episode 1
        assert t4.active[0].all()
        assert t4.episode.returned_length[0] == 4 and t4.episode.episode_length[0] == 0
        # team reward = mean over agents: 1, 1, 2/3, 2/3
        assert t4.episode.returned_return[0] == pytest.approx(2 + 4 / 3)
        # episode 1: truncated at max_cycles; agents alive at the cut keep their final state
        t9 = seen[8]
        assert t9.truncated[0] and not t9.terminated[0] and t9.episode.returned_length[0] == 5
        np.testing.assert_array_equal(t9.final_obs[0, 2], [_val(1, 5, 2)] * 4)
        assert np.any(t9.final_state[0, 0, :-3] != 0) and np.all(t9.final_state[0, 1, :-3] == 0)
        assert not any(t9.terminated[0] for t9 in seen[4:8]) and not any(t.truncated[0] for t in seen[4:8])
        # episode 2: terminations reported at the time limit (multiwalker's oddity) count as a truncation
        t14 = seen[13]
        assert t14.truncated[0] and not t14.terminated[0]
        np.testing.assert_array_equal(t14.final_obs[0, 0], [_val(2, 5, 0)] * 2 + [0, 0])
        # a dead agent is never sent an action
        sent = env.vec.envs[0].penv.sent
        assert all("a1" not in a for a in sent[2:4]) and "a1" in sent[4]


def test_env_global_state_from_parallel_env_state():
    from pettingzoo.sisl import pursuit_v5
    fn = functools.partial(pursuit_v5.parallel_env, max_cycles=4, n_evaders=5)
    with HostVectorEnv(fn, 1, global_state="agent_specific", async_=False) as env:
        A, O = 8, 7 * 7 * 3
        assert env.spec.state_dim == O + 16 * 16 * 3 + A
        ts = env.reset(seed=3)
        world = np.asarray(env.vec.envs[0].penv.state(), np.float32).reshape(-1)
        for i in (0, 5):
            np.testing.assert_array_equal(ts.state[0, i], np.concatenate([ts.obs[0, i], world, np.eye(A)[i]]))


def test_shorter_episode_limit_is_enforced_as_truncation():
    with HostVectorEnv(Scripted, 1, async_=False, episode_limit=3) as env:
        env.reset()
        steps = [env.step(np.zeros((1, 3), int)) for _ in range(3)]
        assert steps[2].truncated[0] and not steps[2].terminated[0] and steps[2].episode.returned_length[0] == 3
        np.testing.assert_array_equal(steps[2].obs[0, 0], [_val(1, 0, 0)] * 2 + [0, 0])


def test_worker_processes_match_in_process_stepping():
    with HostVectorEnv(Scripted, 2, async_=False) as a, HostVectorEnv(Scripted, 2, async_=True) as b:
        for x, y in zip([a.reset()], [b.reset()]):
            np.testing.assert_array_equal(x.obs, y.obs)
        for _ in range(7):
            x, y = a.step(np.ones((2, 3), int)), b.step(np.ones((2, 3), int))
            for f in ("obs", "state", "avail", "reward", "terminated", "truncated", "active", "final_obs"):
                np.testing.assert_array_equal(getattr(x, f), getattr(y, f), err_msg=f)


def test_bad_inputs_raise_one_line_value_errors():
    with pytest.raises(ValueError, match="num_envs=0"):
        HostVectorEnv(Scripted, 0, async_=False)
    with pytest.raises(ValueError, match="global_state='world'"):
        HostVectorEnv(Scripted, 1, global_state="world", async_=False)
    with pytest.raises(ValueError, match="does not implement state"):
        HostVectorEnv(Scripted, 1, global_state="env", async_=False)
    with HostVectorEnv(Scripted, 1, async_=False) as env:
        env.reset()
        with pytest.raises(ValueError, match=r"actions of shape \(3,\)"):
            env.step(np.zeros(3, int))


# --------------------------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------------------------
HOST_TINY = dict(num_envs=2, rollout_length=8, update_epochs=1, num_minibatches=2, hidden=(16, 16),
                 total_env_steps=2 * 8 * 2, progress=False, measure_trust_region=False)


def _check(summary, spec_agents, updates=2):
    m = summary["metrics"]
    assert m["policy_loss"].shape == (updates,) and m["entropy"].shape == (updates, spec_agents)
    for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "explained_variance", "reward_mean"):
        assert np.isfinite(m[k]).all(), k


# the on-policy family (HOST_TINY sets its keys); the off-policy host path is in tests/test_off_policy.py
@pytest.mark.parametrize("algo", sorted(a for a, x in ALGORITHMS.items() if x.family == "on_policy"))
@pytest.mark.parametrize("network", ["ff", "gru"])
def test_every_algorithm_trains_on_the_scripted_env(algo, network):
    s = host_train(tiny(algo=algo, network=network, **HOST_TINY), Scripted, async_=False)
    _check(s, 3)
    assert s["metrics"]["episodes"].sum() >= 2


def test_pursuit_v5_end_to_end_with_run_folder(tmp_path):
    from pettingzoo.sisl import pursuit_v5
    fn = functools.partial(pursuit_v5.parallel_env, max_cycles=6, n_evaders=5)
    c = tiny(algo="mappo", network="gru", **{**HOST_TINY, "measure_trust_region": True, "checkpoint_every": 1})
    s = host_train(c, fn, run_dir=tmp_path / "run", plot=False)
    _check(s, 8)
    assert s["spec"]["discrete"] and s["spec"]["num_actions"] == 5 and s["spec"]["episode_limit"] == 6
    assert math.isfinite(s["final_return"]) and s["metrics"]["episodes"].sum() >= 4  # 16 steps / 6, 2 envs
    np.testing.assert_allclose(s["metrics"]["episode_length"][~np.isnan(s["metrics"]["episode_length"])], 6)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["update"]) for r in rows] == [1, 2] and "tv_7" in rows[0]
    assert (tmp_path / "run" / "trust_region.csv").exists()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["host_env"]["name"] == "host:pursuit_v5"
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()) == ["1", "2"]
    # resume: the last checkpoint (update 2) is restored and one more update runs
    s2 = host_train(c, fn, run_dir=tmp_path / "run", num_updates=3, resume=True, plot=False)
    assert s2["metrics"]["policy_loss"].shape == (1,)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["update"]) for r in rows] == [1, 2, 3]


@pytest.mark.parametrize("algo", ["ippo", "jrppo"])
def test_multiwalker_v9_continuous_end_to_end(algo):
    from pettingzoo.sisl import multiwalker_v9
    fn = functools.partial(multiwalker_v9.parallel_env, max_cycles=5)
    s = host_train(tiny(algo=algo, network="ff", **HOST_TINY), fn)
    _check(s, 3)
    spec = s["spec"]
    assert not spec["discrete"] and spec["num_actions"] == 4 and (spec["action_low"], spec["action_high"]) == (-1, 1)
    # 16 steps per env at max_cycles=5: 3 episodes each, every one cut by the time limit (or a fall)
    assert s["metrics"]["episodes"].sum() >= 6


class Match(ParallelEnv):
    """Two agents each see a one-hot cue of 3 and share reward = fraction choosing their cued action."""

    metadata = {"name": "match"}

    def __init__(self):
        self.possible_agents = ["a", "b"]
        self.max_cycles = 10
        self.rng = np.random.default_rng()

    def observation_space(self, agent):
        return spaces.Box(0, 1, (3,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(3)

    def _obs(self):
        self.cue = self.rng.integers(3, size=2)
        return {a: np.eye(3, dtype=np.float32)[self.cue[i]] for i, a in enumerate(self.possible_agents)}

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        self.agents = list(self.possible_agents)
        return self._obs(), {}

    def step(self, actions):
        r = float(np.mean([actions[a] == self.cue[i] for i, a in enumerate(self.possible_agents)]))
        self.t += 1
        done = self.t >= self.max_cycles
        obs = self._obs()
        if done:
            self.agents = []
        flags = {a: False for a in self.possible_agents}
        return obs, {a: r for a in self.possible_agents}, flags, {a: done for a in self.possible_agents}, {}


def test_host_path_learns_a_cue_matching_task():
    """Random play returns 10/3 per 10-step episode; the learned policy approaches the maximum 10."""
    c = tiny(algo="ippo", network="ff", num_envs=4, rollout_length=32, update_epochs=4, num_minibatches=2,
             hidden=(32, 32), total_env_steps=4 * 32 * 30, lr=3e-3, progress=False, measure_trust_region=False)
    s = host_train(c, Match, async_=False)
    r = s["metrics"]["return_mean"]
    assert np.nanmean(r[:3]) < 5.0 and np.nanmean(r[-3:]) > 8.5
