"""PettingZoo export: PettingZoo's own parallel API test on MPE and SMAX, seeding, time limits.

Cost control: one env object per family is built once per module and shared, because the
jitted reset/step are cached per env object (two compilations, MPE and SMAX 3m).
"""
import contextlib
import io
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

with contextlib.redirect_stdout(io.StringIO()):  # jaxmarl prints a line about submodules
    import jaxmarl
from jaxmarl.environments import spaces as jspaces
from pettingzoo.test import parallel_api_test

from trustmarl.envs.pettingzoo_export import to_gymnasium_space, to_parallel_env
from trustmarl.envs.smax_maps import make_smax


@pytest.fixture(scope="module")
def mpe():
    return jaxmarl.make("MPE_simple_spread_v3")


@pytest.fixture(scope="module")
def smax():
    return make_smax("3m")


def _api_test(env, num_cycles):
    # parallel_api_test reports most violations only as warnings; treat its warnings as failures.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=num_cycles)
    pz_warnings = [str(w.message) for w in caught if "pettingzoo" in w.filename]
    assert not pz_warnings, pz_warnings


def _rollout(env, seed, n_steps):
    """Fixed action sequence (first allowed action, else 1): returns stacked obs and rewards."""
    obs, infos = env.reset(seed=seed)
    out = [np.concatenate([obs[a] for a in env.possible_agents])]
    rews = []
    for _ in range(n_steps):
        if not env.agents:
            break
        acts = {a: int(np.flatnonzero(infos[a]["action_mask"])[-1]) if "action_mask" in infos[a] else 1
                for a in env.agents}
        obs, rew, term, trunc, infos = env.step(acts)
        out.append(np.concatenate([obs[a] for a in obs]))
        rews.append([rew[a] for a in rew])
    return out, rews


def test_mpe_passes_parallel_api_test(mpe):
    env = to_parallel_env(mpe, seed=0)
    _api_test(env, num_cycles=60)
    assert env.observation_space("agent_0").shape == mpe.observation_space("agent_0").shape


def test_smax_passes_parallel_api_test(smax):
    env = to_parallel_env(smax, seed=0)
    _api_test(env, num_cycles=120)
    obs, infos = env.reset(seed=3)
    for a in env.agents:
        assert env.observation_space(a).contains(obs[a])
        assert infos[a]["action_mask"].shape == (env.action_space(a).n,)
    assert env.state().shape == env.state_space.shape


def test_mpe_time_limit_is_truncation(mpe):
    env = to_parallel_env(mpe, seed=0)
    assert env.time_limit == mpe.max_steps
    env.reset()
    for t in range(1, mpe.max_steps + 1):
        assert env.agents
        _, _, term, trunc, _ = env.step({a: env.action_space(a).sample() for a in env.agents})
        assert not any(term.values())
        assert all(trunc.values()) == (t == mpe.max_steps)
    assert env.agents == []
    with pytest.raises(ValueError, match="reset"):
        env.step({})

    short = to_parallel_env(mpe, max_steps=3)
    short.reset()
    for _ in range(3):
        _, _, term, trunc, _ = short.step({a: 0 for a in short.agents})
    assert all(trunc.values()) and not any(term.values()) and short.agents == []


def test_smax_dead_units_terminate_and_leave(smax):
    env = to_parallel_env(smax, seed=0)
    finished = []
    for seed in range(3):
        obs, infos = env.reset(seed=seed)
        while env.agents:
            live = list(env.agents)
            acts = {a: env.action_space(a).sample(mask=infos[a]["action_mask"]) for a in live}
            obs, rew, term, trunc, infos = env.step(acts)
            assert set(obs) == set(rew) == set(term) == set(trunc) == set(live)
            assert env.agents == [a for a in live if not (term[a] or trunc[a])]
            if env.agents:  # a mid-episode exit is a unit death, never a truncation
                assert not any(trunc.values())
            finished += [a for a in live if term[a] or trunc[a]]
    assert finished


def test_same_seed_same_trajectory(mpe, smax):
    for base in (mpe, smax):
        a, b = to_parallel_env(base, seed=0), to_parallel_env(base, seed=123)
        obs_a, rew_a = _rollout(a, seed=7, n_steps=6)
        obs_b, rew_b = _rollout(b, seed=7, n_steps=6)
        np.testing.assert_array_equal(np.stack(obs_a), np.stack(obs_b))
        assert rew_a == rew_b
        obs_c, _ = _rollout(a, seed=7, n_steps=6)  # reset(seed=) restarts the chain
        np.testing.assert_array_equal(np.stack(obs_a), np.stack(obs_c))
        obs_d, _ = _rollout(a, seed=8, n_steps=6)
        assert not np.array_equal(obs_a[0], obs_d[0])


def test_bad_input_raises_value_error(mpe):
    with pytest.raises(ValueError, match="render_mode"):
        to_parallel_env(mpe, render_mode="human")
    with pytest.raises(ValueError, match="max_steps"):
        to_parallel_env(mpe, max_steps=0)
    with pytest.raises(ValueError, match="seed"):
        to_parallel_env(mpe, seed=-1)
    with pytest.raises(ValueError, match="MultiAgentEnv"):
        to_parallel_env(object())
    env = to_parallel_env(mpe)
    env.reset()
    good = {a: 0 for a in env.agents}
    with pytest.raises(ValueError, match="unknown agents"):
        env.step({**good, "nobody": 0})
    with pytest.raises(ValueError, match="no action"):
        env.step({"agent_0": 0})
    with pytest.raises(ValueError, match="integer in"):
        env.step({**good, "agent_0": 5})


def test_space_conversion():
    b = to_gymnasium_space(jspaces.Box(-1.0, 2.0, (3,)))
    assert b.shape == (3,) and b.dtype == np.float32 and float(b.low[0]) == -1.0 and float(b.high[2]) == 2.0
    assert to_gymnasium_space(jspaces.Discrete(4)).n == 4
    md = to_gymnasium_space(jspaces.MultiDiscrete([2, 3]))
    assert md.nvec.tolist() == [2, 3]
    d = to_gymnasium_space(jspaces.Dict({"x": jspaces.Discrete(2), "y": jspaces.Box(0.0, 1.0, (2,))}))
    assert set(d.spaces) == {"x", "y"}
    t = to_gymnasium_space(jspaces.Tuple([jspaces.Discrete(2), jspaces.Discrete(3)]))
    assert [s.n for s in t.spaces] == [2, 3]
    with pytest.raises(ValueError, match="cannot be exported"):
        to_gymnasium_space(jspaces.Discrete(0))
    with pytest.raises(ValueError, match="cannot be exported"):
        to_gymnasium_space(jnp.zeros(3))
