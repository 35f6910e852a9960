"""The env layer's contract: shapes, truncation vs termination, auto-reset, death masking, episode stats."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.envs import list_smax_maps, make_env


def rollout(env, steps, n_envs=4, seed=0):
    def body(c, k):
        st, ts = c
        a = env.random_actions(k, ts.avail)
        st, nts = env.step(k, st, a)
        return (st, nts), (ts, nts)

    def one(k):
        return jax.lax.scan(body, env.reset(k), jax.random.split(k, steps))[1]

    return jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(seed), n_envs))


@pytest.mark.parametrize("n", [2, 4])
def test_mpe_spread_shapes_and_truncation(n):
    env = make_env("mpe_spread", num_agents=n)
    spec = env.spec
    assert spec.num_agents == n and spec.discrete and spec.num_actions == 5
    prev, ts = rollout(env, 60)
    assert ts.obs.shape == (4, 60, n, spec.obs_dim)
    assert ts.state.shape == (4, 60, n, spec.state_dim)
    # MPE never terminates; it truncates at the time limit
    assert not bool(ts.terminated.any())
    ends = np.where(np.asarray(ts.truncated[0]))[0]
    assert len(ends) == 2 and ends[1] - ends[0] == ends[0] + 1
    assert int(ts.episode.returned_length[0, ends[0]]) == ends[0] + 1
    # at a truncation the returned obs is the reset obs; the final obs is the pre-reset one
    t = ends[0]
    assert not np.allclose(ts.obs[0, t], ts.final_obs[0, t])
    assert np.allclose(ts.final_obs[0, t - 1], ts.obs[0, t - 1])
    # the episode return is the summed team reward (mean over agents)
    expected = float(ts.reward[0, : t + 1].mean(-1).sum())
    assert float(ts.episode.returned_return[0, t]) == pytest.approx(expected, rel=1e-5)


def test_agent_specific_state_layout():
    """MPE's agent-centred state: own obs with the (always zero) comm block replaced by the others'
    velocities, then the one-hot id (docs/envs/mpe.md)."""
    env = make_env("mpe_spread", num_agents=3, global_state="agent_specific")
    _, ts = env.reset(jax.random.PRNGKey(0))
    O = env.spec.obs_dim
    assert env.spec.state_dim == O + 3
    comm = 2 * (3 - 1)
    # everything but the comm block is the agent's own observation
    np.testing.assert_allclose(ts.state[:, :O - comm], ts.obs[:, :O - comm])
    np.testing.assert_allclose(ts.state[:, -3:], np.eye(3))


def test_smax_death_masking_termination_and_win_flags():
    env = make_env("smax", map="3m")
    spec = env.spec
    assert spec.has_win and spec.num_agents == 3
    prev, ts = rollout(env, 120, n_envs=8)
    act = np.asarray(prev.active)
    dead = ~act
    assert dead.any(), "random play on 3m should lose units"
    state = np.asarray(prev.state)
    ids = state[..., -3:]
    body = state[..., :-3]
    # dead agents: zero state except the one-hot id; alive agents: non-zero body
    assert np.all(body[dead] == 0.0)
    assert np.all(ids.sum(-1) == 1.0)
    assert np.abs(body[act]).sum(-1).min() > 0
    # SMAX episodes end by elimination (termination) or the time limit (truncation), never both
    assert not bool((ts.terminated & ts.truncated).any())
    assert bool(ts.terminated.any())
    done = np.asarray(ts.episode.done)
    won = np.asarray(ts.episode.returned_won)[done]
    assert set(np.unique(won)) <= {0.0, 1.0}
    # avail masks: dead agents may only take the no-op; alive ones can always stop
    assert np.asarray(prev.avail).any(-1).all()


def test_every_smax_map_builds_with_consistent_shapes():
    maps = list_smax_maps()
    assert {"3m", "2s3z", "27m_vs_30m"} <= set(maps)
    for name, (allies, enemies) in maps.items():
        env = make_env("smax", map=name)
        spec = env.spec
        assert spec.num_agents == allies, name
        assert spec.num_actions == 5 + enemies, name
        shapes = jax.eval_shape(env.reset, jax.random.PRNGKey(0))[1]
        assert shapes.obs.shape == (allies, spec.obs_dim)
        assert shapes.state.shape == (allies, spec.state_dim)


def test_bad_env_options_are_one_line_errors():
    with pytest.raises(ValueError, match="map='nope' is not a SMAX map"):
        make_env("smax", map="nope")
    with pytest.raises(ValueError, match="env='atari' is unknown"):
        make_env("atari")
    with pytest.raises(ValueError, match="global_state='x' is not one of"):
        make_env("mpe_spread", global_state="x")
    with pytest.raises(ValueError, match="bad option for env='mpe_spread'"):
        make_env("mpe_spread", colour=3)


def test_continuous_mpe_spec():
    env = make_env("mpe_spread", num_agents=2, continuous=True)
    assert not env.spec.discrete and env.spec.num_actions == 5
    assert env.spec.action_low == 0.0 and env.spec.action_high == 1.0


class _Hetero:
    """A minimal JaxMARL-API env with two agents of different observation (3, 5) and action (2, 4) sizes."""

    def __init__(self):
        from jaxmarl.environments import spaces
        self.agents = ["a", "b"]
        self.num_agents = 2
        self.max_steps = 4
        self._obs = {"a": spaces.Box(-1, 1, (3,)), "b": spaces.Box(-1, 1, (5,))}
        self._act = {"a": spaces.Discrete(2), "b": spaces.Discrete(4)}

    def observation_space(self, a):
        return self._obs[a]

    def action_space(self, a):
        return self._act[a]

    def get_avail_actions(self, state):
        raise NotImplementedError  # like MPE: every real action is available

    def _obs_of(self, t):
        return {"a": jnp.full((3,), t + 1.0), "b": jnp.full((5,), -(t + 1.0))}

    def reset(self, key):
        t = jnp.zeros((), jnp.int32)
        return self._obs_of(t), t

    def step_env(self, key, t, actions):
        t = t + 1
        r = (actions["a"] + actions["b"]).astype(jnp.float32)
        done = t >= self.max_steps
        return self._obs_of(t), t, {"a": r, "b": r}, {"a": done, "b": done, "__all__": done}, {}


def test_heterogeneous_agents_are_padded_and_masked():
    from trustmarl.envs import JaxMARLAdapter
    env = JaxMARLAdapter(_Hetero(), "hetero", global_state="concat_obs")
    spec = env.spec
    assert spec.obs_dim == 5 and spec.num_actions == 4 and spec.obs_dims == (3, 5) and spec.action_dims == (2, 4)
    st, ts = env.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(ts.obs[0], [1, 1, 1, 0, 0])  # agent a zero-padded to 5
    np.testing.assert_array_equal(ts.obs[1], [-1] * 5)
    np.testing.assert_array_equal(ts.avail, [[True, True, False, False], [True, True, True, True]])
    # random valid actions never pick agent a's padded actions
    acts = jax.vmap(env.random_actions, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(1), 500), ts.avail)
    assert int(acts[:, 0].max()) <= 1 and int(acts[:, 1].max()) == 3
    for t in range(4):
        st, ts = env.step(jax.random.PRNGKey(t), st, jnp.array([1, 3]))
    assert bool(ts.truncated) and not bool(ts.terminated)
    assert float(ts.reward[0]) == 4.0 and int(ts.episode.returned_length) == 4
