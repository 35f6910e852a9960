"""Compact world states (issue 16): every JAX env trustmarl ships gives an O(N) world state, laid out as
docs/envs/<env>.md says, used by ``global_state="env"`` and by the agent-specific state; MAPPO trains on each
env with its default global state."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.envs import make_env
from trustmarl.envs.pursuit import PursuitState

from conftest import tiny

# The default critic state of each env (global_state="auto"): MAPPO's agent-specific state everywhere.
DEFAULT_STATE = {"spread": "agent_specific", "mpe_spread": "agent_specific", "pursuit": "agent_specific",
                 "rover_tower": "agent_specific"}


def _world(adapter, env_state):
    obs = jnp.zeros((adapter.spec.num_agents, adapter.spec.obs_dim))
    return np.asarray(adapter.hooks.world_state(adapter.env, env_state, obs))


def _widths(name, **kw):
    """(obs_dim, world width, N) and the state width of each global_state kind."""
    out = {kind: make_env(name, global_state=kind, **kw).spec for kind in ("agent_specific", "env", "concat_obs")}
    spec = out["env"]
    n = spec.num_agents
    return spec.obs_dim, spec.state_dim - n, n, {k: s.state_dim for k, s in out.items()}


def _check_kinds(obs_dim, world, n, widths, agent_body=None):
    """agent_body: width of the env's own agent-specific body (EnvHooks.agent_state); default [obs, world]."""
    body = obs_dim + world if agent_body is None else agent_body
    assert widths == {"agent_specific": body + n, "env": world + n, "concat_obs": obs_dim * n + n}


# --- sizes: O(N), for each env at a couple of N ----------------------------------------------------------
@pytest.mark.parametrize("n", [3, 10, 40])
def test_spread_world_state_size_is_linear(n):
    obs_dim, world, agents, widths = _widths("spread", num_agents=n)
    assert agents == n and world == 6 * n and obs_dim == 6 * n
    # agent-specific: the agent-centred world, as wide as one observation, plus the id: 7N, as the actor's input
    _check_kinds(obs_dim, world, n, widths, agent_body=6 * n)


@pytest.mark.parametrize("n", [3, 8])
def test_mpe_spread_world_state_size_is_linear(n):
    obs_dim, world, agents, widths = _widths("mpe_spread", num_agents=n)
    assert agents == n and world == 4 * n + 2 * n
    _check_kinds(obs_dim, world, n, widths, agent_body=obs_dim)


@pytest.mark.parametrize("pursuers,evaders", [(8, 30), (3, 5)])
def test_pursuit_world_state_size_is_linear(pursuers, evaders):
    obs_dim, world, agents, widths = _widths("pursuit", n_pursuers=pursuers, n_evaders=evaders)
    assert agents == pursuers and world == 2 * pursuers + 3 * evaders
    assert world < 16 * 16 * 3  # smaller than the whole-map image
    _check_kinds(obs_dim, world, agents, widths)


@pytest.mark.parametrize("pairs,landmarks", [(4, 6), (2, 3)])
def test_rover_tower_world_state_size_is_linear(pairs, landmarks):
    obs_dim, world, agents, widths = _widths("rover_tower", num_pairs=pairs, num_landmarks=landmarks)
    assert agents == 2 * pairs and world == pairs * (7 + 5) + 2 * landmarks
    _check_kinds(obs_dim, world, agents, widths)


# --- contents: the world state holds what its layout claims ----------------------------------------------
def _stepped(adapter, steps=3, seed=0):
    """Env state after a few random steps (velocities nonzero)."""
    astate, ts = adapter.reset(jax.random.PRNGKey(seed))
    for i in range(steps):
        k = jax.random.fold_in(jax.random.PRNGKey(seed), i)
        astate, ts = adapter.step(k, astate, adapter.random_actions(k, ts.avail))
    return astate.env_state, ts


def test_spread_world_state_contents():
    n = 5
    adapter = make_env("spread", num_agents=n)
    st, _ = _stepped(adapter)
    w = _world(adapter, st)
    np.testing.assert_array_equal(w[: 2 * n].reshape(n, 2), st.p_pos)
    np.testing.assert_array_equal(w[2 * n: 4 * n].reshape(n, 2), st.p_vel)
    np.testing.assert_array_equal(w[4 * n:].reshape(n, 2), st.landmark_pos)
    assert np.abs(st.p_vel).sum() > 0


def test_mpe_spread_world_state_contents():
    n = 4
    adapter = make_env("mpe_spread", num_agents=n)
    st, _ = _stepped(adapter)
    w = _world(adapter, st)
    np.testing.assert_array_equal(w[: 2 * n].reshape(n, 2), st.p_pos[:n])
    np.testing.assert_array_equal(w[2 * n: 4 * n].reshape(n, 2), st.p_vel[:n])
    np.testing.assert_array_equal(w[4 * n:].reshape(n, 2), st.p_pos[n:])


def test_pursuit_world_state_contents():
    adapter = make_env("pursuit", n_pursuers=3, n_evaders=4)
    st = PursuitState(done=jnp.array(False), step=jnp.array(0, jnp.int32),
                      pursuer_pos=jnp.array([[0, 0], [15, 15], [3, 14]], jnp.int32),
                      evader_pos=jnp.array([[1, 2], [4, 3], [15, 0], [2, 2]], jnp.int32),
                      evader_alive=jnp.array([True, False, True, True]))
    w = _world(adapter, st)
    np.testing.assert_allclose(w[:6].reshape(3, 2), np.array([[0, 0], [15, 15], [3, 14]]) / 15)
    np.testing.assert_allclose(w[6:14].reshape(4, 2), np.array([[1, 2], [0, 0], [15, 0], [2, 2]]) / 15)
    np.testing.assert_array_equal(w[14:], [1, 0, 1, 1])


def test_rover_tower_world_state_contents():
    p, L, c = 4, 6, 5
    adapter = make_env("rover_tower")
    st, _ = _stepped(adapter, seed=3)
    w = _world(adapter, st)
    pair = w[: p * (7 + c)].reshape(p, 7 + c)
    t2r = np.asarray(st.tower_to_rover)
    np.testing.assert_array_equal(pair[:, 0:2], np.asarray(st.rover_pos)[t2r])
    np.testing.assert_array_equal(pair[:, 2:4], np.asarray(st.rover_vel)[t2r])
    np.testing.assert_array_equal(pair[:, 4:6], np.asarray(st.landmark_pos)[np.asarray(st.goal)])
    np.testing.assert_array_equal(pair[:, 6:6 + c], st.c)
    np.testing.assert_allclose(pair[:, -1], t2r / (p - 1))
    np.testing.assert_array_equal(w[p * (7 + c):].reshape(L, 2), st.landmark_pos)


@pytest.mark.parametrize("name,kw", [("pursuit", {"n_pursuers": 2, "n_evaders": 3}), ("rover_tower", {})])
def test_global_state_layouts_use_the_world_state(name, kw):
    """env: [world, onehot(i)]; agent_specific (no agent_state hook): [own obs, world, onehot(i)]."""
    env_kind = make_env(name, global_state="env", **kw)
    spec_kind = make_env(name, global_state="agent_specific", **kw)
    astate, ts = env_kind.reset(jax.random.PRNGKey(1))
    _, ts2 = spec_kind.reset(jax.random.PRNGKey(1))
    n = env_kind.spec.num_agents
    w = _world(env_kind, astate.env_state)
    for i in range(n):
        np.testing.assert_array_equal(ts.state[i], np.concatenate([w, np.eye(n)[i]]))
        np.testing.assert_array_equal(ts2.state[i], np.concatenate([ts2.obs[i], w, np.eye(n)[i]]))


@pytest.mark.parametrize("name", ["spread", "mpe_spread"])
def test_spread_agent_specific_state_is_the_agent_centred_world(name):
    """[v_i, p_i, q_l − p_i (all l), p_b − p_i (b ≠ i), v_b (b ≠ i), onehot(i)]: the observation with its
    always-zero comm block replaced by the other agents' velocities, then the id."""
    n = 4
    adapter = make_env(name, num_agents=n)
    st, ts = _stepped(adapter)
    if name == "spread":
        pos, vel, land = st.p_pos, st.p_vel, st.landmark_pos
    else:
        pos, vel, land = st.p_pos[:n], st.p_vel[:n], st.p_pos[n:]
    obs, state = np.asarray(ts.obs), np.asarray(ts.state)
    comm = 4 + 2 * n + 2 * (n - 1)  # where the comm block starts in the observation
    assert not obs[:, comm:].any()
    for i in range(n):
        others = [b for b in range(n) if b != i]
        np.testing.assert_array_equal(state[i, :comm], obs[i, :comm])
        np.testing.assert_array_equal(state[i, comm:comm + 2 * (n - 1)], np.asarray(vel)[others].reshape(-1))
        np.testing.assert_array_equal(state[i, -n:], np.eye(n)[i])
        # it determines the world: absolute positions are p_i plus the offsets
        np.testing.assert_allclose(state[i, 2:4] + state[i, 4:4 + 2 * n].reshape(n, 2), land, atol=1e-6)
        np.testing.assert_allclose(state[i, 2:4] + state[i, 4 + 2 * n:comm].reshape(n - 1, 2),
                                   np.asarray(pos)[others], atol=1e-6)
    assert np.abs(vel).sum() > 0


def test_agent_state_hook_and_death_masking():
    """An EnvHooks.agent_state body replaces [obs, world] in the agent-specific state; dead agents keep only
    their id."""
    from trustmarl.envs import EnvHooks, JaxMARLAdapter
    from trustmarl.envs.spread import make_spread
    hooks = EnvHooks(world_state=lambda e, s, o: e.get_world_state(s),
                     agent_state=lambda e, s, o: jnp.ones((e.num_agents, 5)) * jnp.arange(e.num_agents)[:, None],
                     alive=lambda e, s: jnp.array([True, False, True]))
    adapter = JaxMARLAdapter(make_spread(num_agents=3), "masked", hooks=hooks)
    assert adapter.spec.state_dim == 5 + 3
    _, ts = adapter.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(ts.state, [[0] * 5 + [1, 0, 0], [0] * 5 + [0, 1, 0], [2] * 5 + [0, 0, 1]])
    bad = EnvHooks(agent_state=lambda e, s, o: jnp.ones((7,)))
    with pytest.raises(ValueError, match=r"agent_state must give \[A, F\]"):
        JaxMARLAdapter(make_spread(num_agents=3), "bad", hooks=bad)


# --- defaults and a MAPPO smoke run on each env -----------------------------------------------------------
@pytest.mark.parametrize("name", sorted(DEFAULT_STATE))
def test_default_global_state(name):
    assert make_env(name).global_state_kind == DEFAULT_STATE[name]


@pytest.mark.parametrize("name,kw", [("spread", {}), ("mpe_spread", {}),
                                     ("pursuit", {"env_options": '{"n_pursuers": 2, "n_evaders": 3}'}),
                                     ("rover_tower", {})])
def test_mappo_trains_with_the_default_state(name, kw):
    from trustmarl.trainers import make_train
    trainer = make_train(tiny(algo="mappo", env=name, **kw))
    assert trainer.env.global_state_kind == DEFAULT_STATE[name]
    assert trainer.critic_in_dim == trainer.spec.state_dim
    state, metrics = jax.jit(trainer)(jax.random.PRNGKey(0))
    assert int(np.asarray(metrics["nonfinite"]).max()) == 0
    assert np.isfinite(np.asarray(metrics["value_loss"])).all()
