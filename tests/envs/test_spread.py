"""Tests of trustmarl.envs.spread: parity with JaxMARL's MPE_simple_spread_v3 and with a loop-based numpy
port of the original MPE world, hand-computed rewards for every reward structure, observation layouts,
truncation, jit/vmap, and N = 100."""
import contextlib
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.envs.spread import SpreadState, make_spread

with contextlib.redirect_stdout(io.StringIO()):  # jaxmarl prints a line about optional submodules
    import jaxmarl
    from jaxmarl.environments.mpe.simple import State as MPEState


def make_state(pos, land, vel=None, step=0):
    pos = jnp.asarray(pos, jnp.float32)
    vel = jnp.zeros_like(pos) if vel is None else jnp.asarray(vel, jnp.float32)
    return SpreadState(done=jnp.array(False), step=jnp.array(step, jnp.int32), p_pos=pos, p_vel=vel,
                       landmark_pos=jnp.asarray(land, jnp.float32), c=jnp.zeros((pos.shape[0], 2)))


def acts_dict(env, a):
    return {ag: jnp.asarray(a[..., i], jnp.int32) for i, ag in enumerate(env.agents)}


def noop(env):
    return {a: jnp.int32(0) for a in env.agents}


def stack(d, env):
    """Agent-keyed dict -> numpy array with the agent axis first."""
    return np.stack([np.asarray(d[a]) for a in env.agents])


# ---------------------------------------------------------------------------------------------------
# Parity with JaxMARL
# ---------------------------------------------------------------------------------------------------
def to_jaxmarl(s: SpreadState) -> MPEState:
    """Our state as JaxMARL's MPE state (entities = agents then landmarks)."""
    return MPEState(p_pos=jnp.concatenate([s.p_pos, s.landmark_pos], axis=-2),
                    p_vel=jnp.concatenate([s.p_vel, jnp.zeros_like(s.landmark_pos)], axis=-2),
                    c=s.c, done=s.done, step=s.step)


def test_matches_jaxmarl_simple_spread_v3():
    """Same state + same actions -> same obs, rewards and next state as jaxmarl.make('MPE_simple_spread_v3'),
    for 128 random worlds with crowded agents (many contacts), along 10-step random trajectories."""
    ref = jaxmarl.make("MPE_simple_spread_v3")
    env = make_spread(num_agents=3)
    assert env.observation_space("agent_0").shape == ref.observation_space("agent_0").shape == (18,)

    # Same key -> same reset world and observations.
    for seed in range(2):
        o_r, s_r = ref.reset(jax.random.PRNGKey(seed))
        o_o, s_o = env.reset(jax.random.PRNGKey(seed))
        np.testing.assert_array_equal(np.asarray(s_r.p_pos), np.concatenate([s_o.p_pos, s_o.landmark_pos]))
        np.testing.assert_array_equal(stack(o_r, env), stack(o_o, env))

    b, steps = 128, 10
    rng = np.random.default_rng(0)
    state = SpreadState(done=jnp.zeros((b,), bool), step=jnp.zeros((b,), jnp.int32),
                        p_pos=jnp.asarray(rng.uniform(-0.35, 0.35, (b, 3, 2)), jnp.float32),
                        p_vel=jnp.asarray(rng.normal(size=(b, 3, 2)) * 0.5, jnp.float32),
                        landmark_pos=jnp.asarray(rng.uniform(-1, 1, (b, 3, 2)), jnp.float32),
                        c=jnp.zeros((b, 3, 2)))
    all_actions = jnp.asarray(rng.integers(0, 5, (steps, b, 3)), jnp.int32)
    keys = jax.random.split(jax.random.PRNGKey(0), b)

    @jax.jit
    def run(state, all_actions):
        # One compiled program for both envs: per step, [b, 3, ·] obs/rewards/positions/velocities of each.
        def one(carry, a):
            s_own, s_ref = carry
            acts = acts_dict(env, a)
            o_o, s_own, r_o, _, _ = jax.vmap(env.step_env)(keys, s_own, acts)
            o_r, s_ref, r_r, _, _ = jax.vmap(ref.step_env)(keys, s_ref, acts)
            st = lambda d: jnp.stack([d[ag] for ag in env.agents], axis=1)  # noqa: E731
            own = (st(o_o), st(r_o), s_own.p_pos, s_own.p_vel)
            theirs = (st(o_r), st(r_r), s_ref.p_pos[:, :3], s_ref.p_vel[:, :3])
            return (s_own, s_ref), (own, theirs)

        return jax.lax.scan(one, (state, to_jaxmarl(state)), all_actions)[1]

    # The crowded start must actually exercise contact forces and collision penalties.
    assert int((np.asarray(jax.vmap(env.reward_parts)(state)[1]) < 0).sum()) > 25
    own, theirs = run(state, all_actions)
    for x, y, what in zip(own, theirs, ("obs", "rewards", "positions", "velocities")):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=2e-5, rtol=1e-5, err_msg=what)


def test_episode_ends_after_25_steps_with_truncation():
    """dones all false for steps 1..24 and all true at step 25; infos mark it a truncation. (JaxMARL 0.2.0
    compares the counter before incrementing it and ends after 26 steps; PettingZoo ends after 25.)"""
    env = make_spread(num_agents=3)
    _, s = env.reset(jax.random.PRNGKey(0))
    for t in range(1, 26):
        _, s, _, dones, infos = env.step_env(jax.random.PRNGKey(t), s, noop(env))
        expect = t == 25
        assert set(dones) == set(env.agents) | {"__all__"}
        assert all(bool(dones[a]) == expect for a in dones)
        assert bool(infos["truncated"].all()) == expect and not bool(infos["terminated"].any())
        assert int(s.step) == t
    # MultiAgentEnv.step auto-resets on the 25th step.
    env2 = make_spread()
    _, s2 = env2.reset(jax.random.PRNGKey(1))
    s2 = s2.replace(step=jnp.int32(24))
    _, s3, _, d, _ = env2.step(jax.random.PRNGKey(2), s2, noop(env2))
    assert bool(d["__all__"]) and int(s3.step) == 0


# ---------------------------------------------------------------------------------------------------
# The original MPE world (OpenAI MPE / MAAC fork): semi-implicit Euler, unweighted reward, self-collision
# ---------------------------------------------------------------------------------------------------
def numpy_original_mpe_spread_step(pos, vel, land, actions):
    """Loop-based port of the original MPE ``World.step`` + ``simple_spread`` reward (one agent at a time)."""
    n = len(pos)
    pos, vel = pos.astype(np.float64).copy(), vel.astype(np.float64).copy()
    moves = {0: (0, 0), 1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}
    force = [5.0 * np.array(moves[int(a)], np.float64) for a in actions]
    for a in range(n):
        for b in range(a + 1, n):
            delta = pos[a] - pos[b]
            dist = np.sqrt(np.sum(delta ** 2))
            pen = np.logaddexp(0, -(dist - 0.3) / 1e-3) * 1e-3
            f = 100.0 * delta / dist * pen
            force[a] = force[a] + f
            force[b] = force[b] - f
    for a in range(n):
        vel[a] = vel[a] * 0.75 + force[a] * 0.1
        pos[a] = pos[a] + vel[a] * 0.1
    rew = []
    for a in range(n):
        r = 0.0
        for lm in land:
            r -= min(np.sqrt(np.sum((pos[b] - lm) ** 2)) for b in range(n))
        for b in range(n):  # includes b == a, as the original scenario does
            if np.sqrt(np.sum((pos[a] - pos[b]) ** 2)) < 0.3:
                r -= 1
        rew.append(r)
    return pos, vel, np.array(rew)


def test_original_mpe_options_match_numpy_reference():
    env = make_spread(num_agents=3, integrator="semi_implicit_euler", local_ratio=None, count_self_collision=True)
    rng = np.random.default_rng(0)
    step = jax.jit(env.step_env)
    for _ in range(20):
        pos = rng.uniform(-0.4, 0.4, (3, 2))
        vel = rng.normal(size=(3, 2)) * 0.3
        land = rng.uniform(-1, 1, (3, 2))
        s = make_state(pos, land, vel)
        for t in range(5):
            a = rng.integers(0, 5, 3)
            pos, vel, rew = numpy_original_mpe_spread_step(pos, vel, land, a)
            _, s, r, _, _ = step(jax.random.PRNGKey(0), s, acts_dict(env, jnp.asarray(a)))
            np.testing.assert_allclose(s.p_pos, pos, atol=1e-5)
            np.testing.assert_allclose(s.p_vel, vel, atol=1e-4)
            np.testing.assert_allclose(stack(r, env), rew, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Hand-computed rewards
# ---------------------------------------------------------------------------------------------------
def step_rewards(env, pos, land):
    """Rewards of a no-op step from rest: explicit Euler moves nobody on the first step, so the rewards are
    those of the constructed positions."""
    _, s, r, _, _ = env.step_env(jax.random.PRNGKey(0), make_state(pos, land), noop(env))
    np.testing.assert_array_equal(s.p_pos, jnp.asarray(pos, jnp.float32))
    return np.array([r[a] for a in env.agents])


def test_hand_computed_rewards_two_agents():
    env = make_spread()  # N = 2, ρ = .5
    land = [[0.0, 0.3], [2.0, 0.0]]
    # Apart (distance 1 > .3): D = −(min(.3, 1.044) + min(2, 1)) = −1.3; r = .5·D.
    np.testing.assert_allclose(step_rewards(env, [[0, 0], [1, 0]], land), [-0.65, -0.65], atol=1e-6)
    # Touching (distance .2 < .3): D = −(.3 + 1.8) = −2.1, C = −1: r = .5·(−2.1) + .5·(−1) = −1.55.
    np.testing.assert_allclose(step_rewards(env, [[0, 0], [0.2, 0]], land), [-1.55, -1.55], atol=1e-6)
    # Original MPE weighting (ρ = None) with the self-collision: r = −2.1 − 1 − 1.
    env0 = make_spread(local_ratio=None, count_self_collision=True)
    np.testing.assert_allclose(step_rewards(env0, [[0, 0], [0.2, 0]], land), [-4.1, -4.1], atol=1e-6)


POS3 = [[0.0, 0.0], [1.0, 0.0], [0.1, 0.0]]  # agents 0 and 2 collide (distance .1)
LAND3 = [[0.0, 1.0], [1.0, 0.5], [0.0, -1.0]]


@pytest.mark.parametrize("structure,expected", [
    # standard/ful: D = −(1 + .5 + 1) = −2.5 for all; C = −1 for agents 0, 2.
    ("standard", [-1.75, -1.25, -1.75]),
    ("ful", [-1.75, -1.25, -1.75]),
    # sep: D_a = −‖p_a − q_a‖ = −1, −.5, −√1.01; no collision term.
    ("sep", [-0.5, -0.25, -0.5 * np.sqrt(1.01)]),
    # mix (j = 1): pair {0, 2} on landmarks {0, 2}: D = −(min(1, √1.01) + min(1, √1.01)) = −2, C = −1;
    # agent 1 alone: D = −.5.
    ("mix", [-1.5, -0.25, -1.5]),
])
def test_hand_computed_rewards_spread3(structure, expected):
    env = make_spread(num_agents=3, reward_structure=structure)
    np.testing.assert_allclose(step_rewards(env, POS3, LAND3), expected, atol=1e-6)


def test_mix_solo_agent_option():
    # j = 0: pair {1, 2} on landmarks {1, 2}: D = −(min(.5, √1.06) + min(√2, √1.01)) = −(.5 + √1.01), no
    # collision between 1 and 2; agent 0 alone: D = −1 (its collision with 2 does not count).
    env = make_spread(num_agents=3, reward_structure="mix", mix_solo_agent=0)
    pair = -0.5 * (0.5 + np.sqrt(1.01))
    np.testing.assert_allclose(step_rewards(env, POS3, LAND3), [-0.5, pair, pair], atol=1e-6)


def _run(env, state, actions, steps=8):
    for t in range(steps):
        _, state, r, _, _ = env.step_env(jax.random.PRNGKey(t), state, actions)
    return np.asarray(state.p_pos), np.array([r[a] for a in env.agents])


def test_dependency_graph_of_sep_and_mix():
    """The MRF of MAMT Fig. 7: in Sep an agent's trajectory and reward ignore the others' actions; in Mix
    j is independent of i and k, while i and k depend on each other."""
    start = make_state([[0.0, 0.0], [0.2, 0.0], [0.1, 0.15]], LAND3)  # everyone in contact
    base = {"agent_0": jnp.int32(0), "agent_1": jnp.int32(0), "agent_2": jnp.int32(0)}
    changed_1 = dict(base, agent_1=jnp.int32(1))
    changed_2 = dict(base, agent_2=jnp.int32(4))

    sep = make_spread(num_agents=3, reward_structure="sep")
    s_a, r_a = _run(sep, start, base)
    s_b, r_b = _run(sep, start, changed_1)
    np.testing.assert_array_equal(s_a[[0, 2]], s_b[[0, 2]])
    np.testing.assert_array_equal(r_a[[0, 2]], r_b[[0, 2]])
    assert not np.allclose(r_a[1], r_b[1])

    mix = make_spread(num_agents=3, reward_structure="mix")  # j = 1
    s_a, r_a = _run(mix, start, base)
    s_b, r_b = _run(mix, start, changed_1)  # j's action: i, k unaffected
    np.testing.assert_array_equal(s_a[[0, 2]], s_b[[0, 2]])
    np.testing.assert_array_equal(r_a[[0, 2]], r_b[[0, 2]])
    s_c, r_c = _run(mix, start, changed_2)  # k's action: j unaffected, i affected
    np.testing.assert_array_equal(s_a[1], s_c[1])
    assert r_a[1] == r_c[1] and r_a[0] != r_c[0]

    # physical_coupling="all": MPE contacts between everyone, so j's action moves i and k.
    # Agent 1 (j) starts just out of reach of agent 0 and walks into it.
    approach = make_state([[0.0, 0.0], [0.32, 0.0], [-0.6, 0.0]], LAND3)
    mix_all = make_spread(num_agents=3, reward_structure="mix", physical_coupling="all")
    s_a, _ = _run(mix_all, approach, base)
    s_b, _ = _run(mix_all, approach, changed_1)
    assert not np.allclose(s_a[0], s_b[0])
    s_a, _ = _run(mix, approach, base)
    s_b, _ = _run(mix, approach, changed_1)
    np.testing.assert_array_equal(s_a[0], s_b[0])


# ---------------------------------------------------------------------------------------------------
# Observations
# ---------------------------------------------------------------------------------------------------
def test_observation_layout():
    env = make_spread(num_agents=3)
    pos = np.array([[0.0, 0.0], [0.5, 0.1], [-0.4, 0.2]], np.float32)
    vel = np.array([[0.1, -0.2], [0.0, 0.3], [0.2, 0.2]], np.float32)
    land = np.array([[1.0, 1.0], [-1.0, 0.5], [0.3, -0.6]], np.float32)
    obs = env.get_obs(make_state(pos, land, vel))
    for a in range(3):
        o = np.asarray(obs[f"agent_{a}"])
        assert o.shape == env.observation_space(f"agent_{a}").shape == (4 + 6 + 4 + 4,)
        others = [b for b in range(3) if b != a]
        expect = np.concatenate([vel[a], pos[a], (land - pos[a]).ravel(), (pos[others] - pos[a]).ravel(),
                                 np.zeros(4)])
        np.testing.assert_allclose(o, expect, atol=1e-6)


def test_observation_nearest_k():
    env = make_spread(num_agents=4, num_observed_others=2, num_observed_landmarks=1)
    assert env.observation_space("agent_0").shape == (4 + 2 + 4 + 4,)
    pos = np.array([[0.0, 0.0], [0.9, 0.0], [0.0, 0.3], [-0.5, 0.0]], np.float32)
    land = np.array([[2.0, 2.0], [0.1, 0.1], [-1.0, -1.0], [1.0, 0.0]], np.float32)
    o = np.asarray(env.get_obs(make_state(pos, land))["agent_0"])
    # nearest landmark: #1; nearest others: agent 2 (.3), then agent 3 (.5).
    expect = np.concatenate([[0, 0, 0, 0], land[1], pos[2], pos[3], np.zeros(4)])
    np.testing.assert_allclose(o, expect, atol=1e-6)
    o1 = np.asarray(env.get_obs(make_state(pos, land))["agent_1"])
    # agent 1 at (.9, 0): nearest landmark #3 at (1, 0); others: agent 2 (√.9), agent 0 (.9 < √.9) -> 0, 2.
    np.testing.assert_allclose(o1[4:6], land[3] - pos[1], atol=1e-6)
    np.testing.assert_allclose(o1[6:10], np.concatenate([pos[0] - pos[1], pos[2] - pos[1]]), atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# jit, vmap, scale
# ---------------------------------------------------------------------------------------------------
def test_jit_equals_no_jit():
    env = make_spread(num_agents=3, reward_structure="mix")
    key = jax.random.PRNGKey(7)
    acts = acts_dict(env, jnp.array([1, 4, 2]))
    s0 = make_state(POS3, LAND3, vel=[[0.1, 0.0], [0.0, -0.2], [0.3, 0.1]])  # includes a collision
    out_j = env.step_env(key, s0, acts)
    # Eager reset is skipped: op-by-op compilation of its PRNG calls costs seconds and it has no Python
    # control flow (the JaxMARL test checks it bit for bit).
    with jax.disable_jit():
        out_n = env.step_env(key, s0, acts)
    for x, y in zip(jax.tree.leaves(out_j), jax.tree.leaves(out_n)):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_vmap_64_envs():
    env = make_spread(num_agents=3)
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    obs, state = jax.vmap(env.reset)(keys)
    assert obs["agent_0"].shape == (64, 18) and state.p_pos.shape == (64, 3, 2)
    acts = acts_dict(env, jax.random.randint(jax.random.PRNGKey(1), (64, 3), 0, 5))
    obs, state, rew, dones, infos = jax.jit(jax.vmap(env.step_env))(keys, state, acts)
    assert obs["agent_2"].shape == (64, 18) and rew["agent_1"].shape == (64,)
    assert dones["__all__"].shape == (64,) and infos["truncated"].shape == (64, 3)
    # Different keys give different worlds.
    assert float(jnp.std(state.p_pos[:, 0, 0])) > 0.1


def test_hundred_agents_in_jit():
    env = make_spread(num_agents=100, num_observed_others=5, num_observed_landmarks=6)
    assert env.observation_space("agent_99").shape == (4 + 12 + 10 + 10,)

    @jax.jit
    def rollout(key):
        obs, state = env.reset(key)

        def body(state, k):
            a = jax.random.randint(k, (100,), 0, 5)
            obs, state, rew, dones, _ = env.step_env(k, state, {ag: a[i] for i, ag in enumerate(env.agents)})
            return state, (rew["agent_0"], dones["__all__"], obs["agent_50"])

        return jax.lax.scan(body, state, jax.random.split(key, 25))

    state, (rew, done, obs) = rollout(jax.random.PRNGKey(0))
    assert obs.shape == (25, 36) and bool(jnp.all(jnp.isfinite(obs))) and bool(jnp.all(jnp.isfinite(rew)))
    assert bool(done[-1]) and not bool(done[:-1].any())
    # Full observation at N = 100: 4 + 2·100 + 4·99 (shapes only: compiling 100-entry dicts is slow on CPU).
    full = make_spread(num_agents=100)
    _, s = jax.eval_shape(full.reset, jax.random.PRNGKey(0))
    assert full.observation_space("agent_0").shape == (600,)
    assert jax.eval_shape(full.obs_array, s).shape == (100, 600)
    obs = jax.jit(full.obs_array)(state.replace(c=jnp.zeros((100, 2))))
    assert bool(jnp.all(jnp.isfinite(obs))) and bool(jnp.all(jnp.isfinite(jax.jit(full.rewards)(state))))


# ---------------------------------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------------------------------
def test_defaults_and_spaces():
    env = make_spread()
    assert env.num_agents == 2 and env.agents == ["agent_0", "agent_1"] and env.max_steps == 25
    assert env.action_space("agent_0").n == 5
    assert env.observation_space("agent_1").shape == (4 + 4 + 2 + 2,)
    _, s = env.reset(jax.random.PRNGKey(0))
    av = env.get_avail_actions(s)
    assert set(av) == set(env.agents) and np.all(np.asarray(av["agent_0"]) == 1)
    assert env.agent_classes == {"agents": ["agent_0", "agent_1"]}


@pytest.mark.parametrize("kw,word", [
    ({"num_agents": 0}, "num_agents"),
    ({"num_agents": 2.0}, "num_agents"),
    ({"reward_structure": "full"}, "reward_structure"),
    ({"num_agents": 4, "reward_structure": "mix"}, "num_agents"),
    ({"local_ratio": 1.5}, "local_ratio"),
    ({"local_ratio": True}, "local_ratio"),
    ({"max_steps": 0}, "max_steps"),
    ({"num_agents": 3, "num_observed_others": 3}, "num_observed_others"),
    ({"num_observed_landmarks": -1}, "num_observed_landmarks"),
    ({"integrator": "rk4"}, "integrator"),
    ({"count_self_collision": 1}, "count_self_collision"),
    ({"physical_coupling": "none"}, "physical_coupling"),
    ({"num_agents": 3, "reward_structure": "mix", "mix_solo_agent": 3}, "mix_solo_agent"),
    ({"num_agent": 3}, "num_agent"),
])
def test_bad_arguments_raise_one_line_value_error(kw, word):
    with pytest.raises(ValueError) as err:
        make_spread(**kw)
    msg = str(err.value)
    assert "\n" not in msg and word in msg and "allowed" in msg
