"""Bring your own environment: register_env, package.module:factory paths, as_jax_env, and their errors.

The user envs live in tests/envs/custom_envs.py (a cue game, JAX and PettingZoo), importable as
``custom_envs`` like a user's own package. No training here: only building, checking and a few steps.
"""
from __future__ import annotations

import os
import pickle
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

if os.path.dirname(__file__) not in sys.path:  # pytest's default import mode puts it there already
    sys.path.insert(0, os.path.dirname(__file__))
import custom_envs as ce  # noqa: E402

from trustmarl.envs import (ENVS, EnvEntry, JaxMARLAdapter, as_jax_env, is_host_env, list_envs,  # noqa: E402
                            make_env, register_env, resolve_env)
from trustmarl.envs import registry  # noqa: E402


@pytest.fixture
def clean_registry():
    """Names registered by a test are removed afterwards; factory-path entries are re-probed."""
    before = dict(ENVS)
    registry._RESOLVED.clear()
    yield
    ENVS.clear()
    ENVS.update(before)
    registry._RESOLVED.clear()


def one_line_error(fn, *args, match: str, **kw) -> str:
    with pytest.raises(ValueError, match=match) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def check_contract(env: JaxMARLAdapter, steps: int = 6):
    """reset/step shapes per trustmarl.envs.core; returns the timesteps."""
    spec = env.spec
    A, O, S, U = spec.num_agents, spec.obs_dim, spec.state_dim, spec.num_actions
    st, ts = env.reset(jax.random.PRNGKey(0))
    assert ts.obs.shape == (A, O) and ts.state.shape == (A, S) and ts.avail.shape == (A, U)
    assert ts.reward.shape == (A,) and ts.active.shape == (A,) and ts.terminated.shape == ()
    step = jax.jit(env.step)
    out = []
    for t in range(steps):
        k1, k2 = jax.random.split(jax.random.PRNGKey(t + 1))
        st, ts = step(k2, st, env.random_actions(k1, ts.avail))
        assert ts.obs.shape == (A, O) and ts.final_obs.shape == (A, O) and ts.final_state.shape == (A, S)
        assert ts.reward.dtype == jnp.float32 and ts.truncated.dtype == jnp.bool_
        out.append(ts)
    return out


# --- the built-in registry keeps working ----------------------------------------------------------------------
def test_builtins_still_listed_and_built():
    assert {"mpe_spread", "smax", "spread", "pursuit", "rover_tower", "pz_pursuit"} <= set(list_envs())
    assert isinstance(ENVS["mpe_spread"], EnvEntry) and ENVS["pz_pursuit"].host and not ENVS["smax"].host
    assert ENVS["mpe_spread"].doc and ENVS["mpe_spread"].options == ("num_agents", "continuous")
    assert not is_host_env("mpe_spread") and is_host_env("pz_pursuit") and resolve_env("smax") is ENVS["smax"]
    env = make_env("mpe_spread", num_agents=2)
    assert env.spec.num_agents == 2 and not env._cut_at_limit
    # the checker finds nothing wrong in the built-ins (no false alarms)
    registry.check_jax_env(env)
    registry.check_jax_env(make_env("smax", map="3m"))


# --- register_env ---------------------------------------------------------------------------------------------
def test_register_jax_env_and_step(clean_registry):
    entry = register_env("cue", ce.make_cue_env, doc="cue game", options=("max_steps",))
    assert ENVS["cue"] is entry and not entry.host and entry.options == ("max_steps",) and entry.doc == "cue game"
    assert "cue" in list_envs() and not is_host_env("cue")
    env = make_env("cue", max_steps=3)
    assert isinstance(env, JaxMARLAdapter)
    spec = env.spec
    assert spec.name == "cue" and spec.agents == ("agent_0", "agent_1") and spec.episode_limit == 3
    assert spec.obs_dim == ce.OBS and spec.num_actions == ce.K and spec.discrete
    assert env.global_state_kind == "concat_obs" and spec.state_dim == 2 * ce.OBS + 2  # default concat_obs
    ts = check_contract(env, steps=6)
    assert [bool(t.truncated) for t in ts] == [False, False, True] * 2
    assert not any(bool(t.terminated) for t in ts) and int(ts[2].episode.returned_length) == 3
    # the cue game pays for matching the cue: playing the cue gives reward 1 to both agents
    st, t0 = env.reset(jax.random.PRNGKey(5))
    cue = int(jnp.argmax(t0.obs[0, : ce.K]))
    _, t1 = env.step(jax.random.PRNGKey(6), st, jnp.array([cue, (cue + 1) % ce.K]))
    np.testing.assert_array_equal(t1.reward, [1.0, 0.0])


def test_register_global_state_and_episode_limit_options(clean_registry):
    register_env("cue_world", ce.WorldCueEnv)
    env = make_env("cue_world", global_state="env")
    assert env.spec.state_dim == ce.K + 1 + 2  # world (cue one-hot, t) + agent one-hot
    _, ts = env.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(ts.state[1, ce.K:], [0.0, 0.0, 1.0])
    env = make_env("cue_world", global_state="agent_specific")
    assert env.spec.state_dim == ce.OBS + ce.K + 1 + 2
    # a factory that builds its own adapter and names global_state receives it
    register_env("cue_adapter", ce.make_cue_adapter)
    assert make_env("cue_adapter", global_state="env").global_state_kind == "env"
    # episode_limit goes to the adapter; shorter than max_steps, the adapter cuts there (truncation)
    register_env("cue", ce.make_cue_env)
    env = make_env("cue", max_steps=10, episode_limit=2)
    assert env.spec.episode_limit == 2
    ts = check_contract(env, steps=4)
    assert [bool(t.truncated) for t in ts] == [False, True] * 2


def test_register_host_env(clean_registry):
    entry = register_env("cue_pz", ce.make_pz_ctor, host=True, options=("max_cycles",))
    assert entry.host and is_host_env("cue_pz")
    fn = make_env("cue_pz", max_cycles=4)
    fn2 = pickle.loads(pickle.dumps(fn))
    penv = fn2()
    assert penv.possible_agents == ["p0", "p1"] and penv.max_cycles == 4
    # a host factory returning the ParallelEnv itself works too: the constructor is partial(factory, ...)
    register_env("cue_pz2", ce.make_pz_env, host=True)
    fn = make_env("cue_pz2", max_cycles=3)
    assert pickle.loads(pickle.dumps(fn))().max_cycles == 3


def test_host_entry_runs_through_host_vector_env(clean_registry):
    from trustmarl.envs.host_vector import HostVectorEnv
    register_env("cue_pz", ce.make_pz_ctor, host=True)
    with HostVectorEnv(make_env("cue_pz", max_cycles=3), 2, async_=False) as venv:
        assert venv.spec.num_agents == 2 and venv.spec.obs_dim == ce.OBS and venv.spec.episode_limit == 3
        ts = venv.reset(seed=0)
        assert ts.obs.shape == (2, 2, ce.OBS)
        for _ in range(3):
            ts = venv.step(np.zeros((2, 2), int))
        assert ts.truncated.all() and not ts.terminated.any()


def test_register_errors(clean_registry):
    one_line_error(register_env, "", ce.make_cue_env, match=r"name='' is not a valid env name; allowed")
    one_line_error(register_env, 3, ce.make_cue_env, match=r"name=3 is not a valid env name")
    one_line_error(register_env, "a:b", ce.make_cue_env, match=r"name='a:b' is not a valid env name.*':'")
    one_line_error(register_env, "mpe_spread", ce.make_cue_env,
                   match=r"name='mpe_spread' is already registered; pass overwrite=True")
    one_line_error(register_env, "cue", 5, match=r"factory=5 for env 'cue' is not callable")
    one_line_error(register_env, "cue", ce.make_cue_env, options="max_steps", match=r"options='max_steps'")
    register_env("cue", ce.make_cue_env)
    one_line_error(register_env, "cue", ce.make_pz_ctor, match="already registered")
    assert register_env("cue", ce.make_pz_ctor, host=True, overwrite=True).host
    # wrong kind for the entry, bad options, bad results: found when the env is made
    register_env("pz_as_jax", ce.make_pz_env)
    one_line_error(make_env, "pz_as_jax", match=r"env='pz_as_jax'.*ParallelEnv.*host=True")
    register_env("jax_as_host", ce.make_cue_env, host=True)
    one_line_error(make_env, "jax_as_host", match=r"env='jax_as_host' is registered as a host env.*host=False")
    register_env("number", ce.make_number)
    one_line_error(make_env, "number", match=r"env='number': the factory returned builtins.int; allowed")
    register_env("cue_jax", ce.make_cue_env)
    one_line_error(make_env, "cue_jax", colour=1, match=r"bad option for env='cue_jax'.*colour")
    one_line_error(make_env, "cue_jax", global_state="x", match=r"global_state='x' is not one of")
    register_env("cue_adapter", ce.make_cue_adapter)
    assert make_env("cue_adapter").global_state_kind == "concat_obs"
    register_env("fixed_adapter", lambda: ce.make_cue_adapter())
    one_line_error(make_env, "fixed_adapter", global_state="env",
                   match=r"returned a JaxMARLAdapter with global_state='concat_obs' but global_state='env'")


# --- package.module:factory -------------------------------------------------------------------------------------
def test_factory_path_jax(clean_registry):
    entry = resolve_env("custom_envs:make_cue_env")
    assert not entry.host and resolve_env("custom_envs:make_cue_env") is entry  # probed once, cached
    assert not is_host_env("custom_envs:make_cue_env")
    assert "custom_envs:make_cue_env" not in ENVS  # paths are resolved, not registered
    env = make_env("custom_envs:make_cue_env", max_steps=2, global_state="concat_obs")
    assert env.spec.name == "custom_envs:make_cue_env" and env.spec.episode_limit == 2
    check_contract(env, steps=2)
    # a class is classified by its bases, without being built; a factory returning an adapter is JAX too
    assert not is_host_env("custom_envs:CueEnv") and make_env("custom_envs:CueEnv").spec.episode_limit == 5
    assert make_env("custom_envs:make_cue_adapter", global_state="env").global_state_kind == "env"


def test_factory_path_host(clean_registry):
    # a factory returning a ParallelEnv: make() gives partial(factory, **options)
    assert is_host_env("custom_envs:make_pz_env")
    fn = make_env("custom_envs:make_pz_env", max_cycles=7)
    penv = pickle.loads(pickle.dumps(fn))()
    assert penv.possible_agents == ["p0", "p1"] and penv.max_cycles == 7
    # a factory returning a constructor, and the ParallelEnv class itself
    assert is_host_env("custom_envs:make_pz_ctor") and is_host_env("custom_envs:CuePZ")
    assert pickle.loads(pickle.dumps(make_env("custom_envs:make_pz_ctor", max_cycles=2)))().max_cycles == 2
    assert make_env("custom_envs:CuePZ", max_cycles=2)().max_cycles == 2
    one_line_error(make_env, "custom_envs:make_pz_env", colour=1,
                   match=r"bad option for env='custom_envs:make_pz_env'.*colour")


def test_factory_path_errors(clean_registry):
    one_line_error(resolve_env, "atari", match=r"env='atari' is unknown; allowed: .*mpe_spread.*package.module:factory")
    one_line_error(make_env, "atari", match=r"env='atari' is unknown")
    one_line_error(resolve_env, 7, match=r"env=7 must be a str")
    one_line_error(resolve_env, ":make", match=r"env=':make' is not a factory path; allowed: package.module:factory")
    one_line_error(resolve_env, "custom_envs:", match=r"is not a factory path")
    one_line_error(resolve_env, "no_such_pkg_xyz.envs:make",
                   match=r"env='no_such_pkg_xyz.envs:make': module 'no_such_pkg_xyz.envs' cannot be imported.*PYTHONPATH")
    one_line_error(resolve_env, "custom_envs:nope", match=r"module 'custom_envs' has no attribute 'nope'")
    one_line_error(resolve_env, "custom_envs:NOT_CALLABLE", match=r"'NOT_CALLABLE' is a int, not callable")
    one_line_error(resolve_env, "custom_envs:make_number",
                   match=r"env='custom_envs:make_number': the factory returned builtins.int; allowed: a JaxMARL")
    one_line_error(resolve_env, "custom_envs:make_needs_option",
                   match=r"calling make_needs_option\(\) with no options .* failed: TypeError.*give every option a default")


# --- as_jax_env and what the trainer needs -------------------------------------------------------------------------
def test_as_jax_env_wraps_and_passes_adapters_through():
    env = as_jax_env(ce.CueEnv(max_steps=4))
    assert isinstance(env, JaxMARLAdapter) and env.spec.name == "CueEnv" and env.spec.episode_limit == 4
    assert as_jax_env(env) is env
    check_contract(env, steps=4)
    named = as_jax_env(ce.CueEnv(), name="mine", global_state="concat_obs")
    assert named.spec.name == "mine"


def test_no_time_limit_needs_episode_limit():
    msg = one_line_error(as_jax_env, ce.NoLimitCueEnv(), match=r"env 'NoLimitCueEnv' has no time limit")
    assert "episode_limit=" in msg
    env = as_jax_env(ce.NoLimitCueEnv(), episode_limit=3)
    assert env.spec.episode_limit == 3 and env._cut_at_limit
    ts = check_contract(env, steps=6)
    assert [bool(t.truncated) for t in ts] == [False, False, True] * 2 and not any(bool(t.terminated) for t in ts)
    assert int(ts[5].episode.returned_length) == 3
    one_line_error(as_jax_env, ce.NoLimitCueEnv(), episode_limit=0, match=r"episode_limit=0 .* positive integer")
    # through the registry the option has the same name
    try:
        register_env("cue_nolimit", ce.make_no_limit_env)
        one_line_error(make_env, "cue_nolimit", match=r"no time limit.*episode_limit=")
        assert make_env("cue_nolimit", episode_limit=4).spec.episode_limit == 4
    finally:
        ENVS.pop("cue_nolimit", None)


def test_action_masks():
    # absent / NotImplemented: every action is available
    _, ts = as_jax_env(ce.CueEnv()).reset(jax.random.PRNGKey(0))
    assert bool(ts.avail.all())
    # implemented: read every step
    env = as_jax_env(ce.MaskedCueEnv())
    _, ts = env.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(ts.avail, [[True, True, False]] * 2)
    acts = jax.vmap(env.random_actions, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(1), 200), ts.avail)
    assert int(acts.max()) == 1
    # wrong shape: a one-line error naming the env, the agent and the expected shape
    one_line_error(as_jax_env, ce.BadAvailCueEnv(),
                   match=r"env 'BadAvailCueEnv': get_avail_actions\(state\) gives agent 'agent_0' a mask of shape "
                         r"\(2,\); expected \(3,\)")


def test_global_state_without_world_state_falls_back_with_a_warning():
    with pytest.warns(UserWarning, match="has no get_world_state"):
        env = as_jax_env(ce.CueEnv(), global_state="env")
    assert env.spec.state_dim == 2 * ce.OBS + 2  # concatenated observations stand in for the world
    env = as_jax_env(ce.WorldCueEnv(), global_state="env")
    assert env.spec.state_dim == ce.K + 1 + 2
    one_line_error(as_jax_env, ce.CueEnv(), global_state="world", match=r"global_state='world' is not one of")


def test_as_jax_env_errors():
    one_line_error(as_jax_env, ce.MixedCueEnv(), match=r"env 'MixedCueEnv' mixes discrete and continuous")
    one_line_error(as_jax_env, ce.WrongObsCueEnv(),
                   match=r"env 'WrongObsCueEnv': reset\(key\) gives agent 'agent_0' an observation of shape \(5,\) "
                         r"\(5 values\) but observation_space\('agent_0'\) declares 6")
    one_line_error(as_jax_env, ce.CuePZ(), match=r"env 'CuePZ' is a PettingZoo ParallelEnv; it trains on the host path")
    one_line_error(as_jax_env, object(), match=r"env=<object object .*> is not a JaxMARL MultiAgentEnv \(missing agents")
    one_line_error(as_jax_env, ce.CueEnv, match=r"is not a JaxMARL MultiAgentEnv")
