"""Tests of trustmarl.envs.rover_tower: hand-computed rewards, observation layouts, pairing randomness,
dynamics against a loop-based numpy port of MAAC's scenario on its MPE fork, truncation, jit/vmap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.envs.rover_tower import RoverTowerState, make_rover_tower

ROVERS = [f"rover_{i}" for i in range(4)]
TOWERS = [f"tower_{i}" for i in range(4)]


def make_state(rover_pos, landmark_pos, tower_to_rover, goal, rover_vel=None, c=None, step=0):
    t2r = np.asarray(tower_to_rover, np.int32)
    rover_pos = jnp.asarray(rover_pos, jnp.float32)
    return RoverTowerState(
        done=jnp.array(False), step=jnp.array(step, jnp.int32), rover_pos=rover_pos,
        rover_vel=jnp.zeros_like(rover_pos) if rover_vel is None else jnp.asarray(rover_vel, jnp.float32),
        tower_pos=jnp.zeros((len(t2r), 2)), landmark_pos=jnp.asarray(landmark_pos, jnp.float32),
        c=jnp.zeros((len(t2r), 5)) if c is None else jnp.asarray(c, jnp.float32),
        tower_to_rover=jnp.asarray(t2r), rover_to_tower=jnp.asarray(np.argsort(t2r).astype(np.int32)),
        goal=jnp.asarray(goal, jnp.int32))


def actions(rover_a, tower_a):
    out = {r: jnp.int32(a) for r, a in zip(ROVERS, rover_a)}
    out.update({t: jnp.int32(a) for t, a in zip(TOWERS, tower_a)})
    return out


LAND = np.array([[0.0, 0.0], [0.5, 0.5], [-0.5, 0.5], [0.9, -0.9], [-0.3, -0.7], [0.2, 0.8]], np.float32)
T2R = [2, 0, 3, 1]  # tower 0 <-> rover 2, tower 1 <-> rover 0, tower 2 <-> rover 3, tower 3 <-> rover 1
GOAL = [1, 4, 0, 1]  # towers 0 and 3 share landmark 1


def test_hand_computed_rewards():
    """R_t = −d² + 10·1[d² < (.075 + .04)·1.5 = .1725], paid to tower t and to its rover."""
    rover_pos = np.zeros((4, 2), np.float32)
    rover_pos[2] = LAND[1]                      # pair 0: on the goal: d² = 0 -> +10
    rover_pos[0] = LAND[4] + [0.4, 0.0]         # pair 1: d² = .16 < .1725 -> 9.84
    rover_pos[3] = LAND[0] + [0.3, 0.4]         # pair 2: d² = .25 -> −.25
    rover_pos[1] = LAND[1] + [-1.0, 0.0]        # pair 3: d² = 1 -> −1
    pair = np.array([10.0, 9.84, -0.25, -1.0])
    env = make_rover_tower()
    s = make_state(rover_pos, LAND, T2R, GOAL)
    np.testing.assert_allclose(env.pair_rewards(s), pair, atol=1e-5)
    # Through a step: no-op from rest moves nobody; rover r gets its tower's pair reward.
    _, s2, rew, _, _ = env.step_env(jax.random.PRNGKey(0), s, actions([0] * 4, [0] * 4))
    np.testing.assert_array_equal(s2.rover_pos, s.rover_pos)
    np.testing.assert_allclose([rew[t] for t in TOWERS], pair, atol=1e-5)
    rover_expect = [pair[1], pair[3], pair[0], pair[2]]  # rover r is paired with tower T2R⁻¹(r)
    np.testing.assert_allclose([rew[r] for r in ROVERS], rover_expect, atol=1e-5)


def test_observation_layouts_and_messages():
    env = make_rover_tower()
    assert [env.observation_space(a).shape for a in env.agents] == [(13,)] * 4 + [(8,)] * 4
    assert [env.action_space(a).n for a in env.agents] == [5] * 8
    assert env.agents == ROVERS + TOWERS
    rng = np.random.default_rng(0)
    rover_pos, rover_vel = rng.uniform(-1, 1, (4, 2)), rng.normal(size=(4, 2)) * 0.1
    s = make_state(rover_pos, LAND, T2R, GOAL, rover_vel=rover_vel)
    obs = env.get_obs(s)
    eye = np.eye(4)
    for t, r in enumerate(T2R):
        # tower t: [onehot(its rover), that rover's position, its goal landmark's position]
        np.testing.assert_allclose(obs[f"tower_{t}"], np.concatenate([eye[r], rover_pos[r], LAND[GOAL[t]]]),
                                   atol=1e-6)
        # rover r: [onehot(its tower), its tower's message (none yet), own position, own velocity]
        np.testing.assert_allclose(obs[f"rover_{r}"], np.concatenate([eye[t], np.zeros(5), rover_pos[r],
                                                                       rover_vel[r]]), atol=1e-6)
    # Tower t says symbol k: its rover sees onehot(k) in the observation returned by that same step.
    obs, _, _, _, _ = env.step_env(jax.random.PRNGKey(0), s, actions([0] * 4, [3, 0, 4, 1]))
    for t, (r, k) in enumerate(zip(T2R, [3, 0, 4, 1])):
        np.testing.assert_array_equal(obs[f"rover_{r}"][4:9], np.eye(5)[k])

    # The 25-wide rover layout (absolute landmark positions appended).
    env25 = make_rover_tower(rover_observes_landmarks=True)
    assert env25.observation_space("rover_0").shape == (25,) and env25.observation_space("tower_0").shape == (8,)
    o = env25.get_obs(s)
    np.testing.assert_allclose(o["rover_1"][13:], LAND.ravel(), atol=1e-6)
    np.testing.assert_allclose(o["rover_1"][:13], env.get_obs(s)["rover_1"], atol=1e-6)


def test_pairing_and_goals_random_across_resets():
    env = make_rover_tower()
    _, s = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 960))
    t2r, r2t, goal = np.asarray(s.tower_to_rover), np.asarray(s.rover_to_tower), np.asarray(s.goal)
    assert np.all(np.sort(t2r, axis=1) == np.arange(4))                     # a permutation
    assert np.all(np.take_along_axis(r2t, t2r, axis=1) == np.arange(4))     # r2t is its inverse
    perms = {tuple(p) for p in t2r}
    assert len(perms) == 24                                                  # all 4! pairings occur
    # Each tower meets each rover with probability 1/4: 240 expected of 960.
    counts = np.stack([(t2r == r).sum(0) for r in range(4)])
    assert counts.min() > 180 and counts.max() < 300
    # Goals: uniform over 6 landmarks, independent per pair (160 expected per landmark and tower).
    gcounts = np.stack([(goal == g).sum(0) for g in range(6)])
    assert gcounts.min() > 110 and gcounts.max() < 210
    assert np.mean(goal[:, 0] == goal[:, 1]) > 0.1                           # shared goals happen (≈1/6)
    # Positions differ across resets, and start at rest and silent.
    assert np.std(np.asarray(s.rover_pos[:, 0, 0])) > 0.4
    assert not np.asarray(s.rover_vel).any() and not np.asarray(s.c).any()


# ---------------------------------------------------------------------------------------------------
# Dynamics against MAAC (scenario multi_speaker_listener.py + its MPE fork's core.py/environment.py)
# ---------------------------------------------------------------------------------------------------
# Our action k is MAAC's one-hot index MAAC_INDEX[k] (MAAC: u = [a1 − a2, a3 − a4]).
MAAC_INDEX = [0, 2, 1, 4, 3]


def numpy_maac_step(pos, vel, land, t2r, goal, rover_actions, tower_actions):
    """Loop-based port of one MAAC Rover-Tower step: _set_action, World.step, calc_rewards."""
    pos, vel = pos.astype(np.float64).copy(), vel.astype(np.float64).copy()
    accel, mass, max_speed = 1.5, 1.0, 1.0
    for r in range(len(pos)):
        onehot = np.eye(5)[MAAC_INDEX[rover_actions[r]]]
        u = np.array([onehot[1] - onehot[2], onehot[3] - onehot[4]]) * accel  # "sensitivity"
        force = mass * accel * u                                             # core.apply_action_force
        vel[r] = vel[r] * (1 - 0.25) + force / mass * 0.1
        speed = np.sqrt(np.sum(vel[r] ** 2))
        if speed > max_speed:
            vel[r] = vel[r] / speed * max_speed
        pos[r] = pos[r] + vel[r] * 0.1
    c = np.eye(5)[tower_actions]
    pair = []
    for t in range(len(t2r)):
        d = np.sum((pos[t2r[t]] - land[goal[t]]) ** 2)
        pair.append(-d + (10.0 if d < (0.075 + 0.04) * 1.5 else 0.0))
    return pos, vel, c, np.array(pair)


def test_dynamics_and_rewards_match_maac_reference():
    env = make_rover_tower()
    step = jax.jit(env.step_env)
    rng = np.random.default_rng(1)
    for _ in range(4):
        _, s = env.reset(jax.random.PRNGKey(int(rng.integers(1 << 30))))
        pos, vel = np.asarray(s.rover_pos), np.asarray(s.rover_vel)
        land, t2r, goal = np.asarray(s.landmark_pos), np.asarray(s.tower_to_rover), np.asarray(s.goal)
        # Long runs of one direction reach the max speed (accel² = 2.25 -> terminal speed .9 < 1 on an axis;
        # a start velocity above 1 exercises the clamp).
        s = s.replace(rover_vel=jnp.asarray([[1.5, 0.0], [0.0, -2.0], [0.3, 0.3], [0.0, 0.0]]))
        vel = np.asarray(s.rover_vel)
        for t in range(25):
            ra, ta = rng.integers(0, 5, 4), rng.integers(0, 5, 4)
            pos, vel, c, pair = numpy_maac_step(pos, vel, land, t2r, goal, ra, ta)
            obs, s, rew, dones, _ = step(jax.random.PRNGKey(t), s, actions(ra, ta))
            np.testing.assert_allclose(s.rover_pos, pos, atol=1e-5)
            np.testing.assert_allclose(s.rover_vel, vel, atol=1e-5)
            np.testing.assert_array_equal(s.c, c)
            np.testing.assert_allclose([rew[a] for a in TOWERS], pair, atol=1e-4)
        assert bool(dones["__all__"])


def test_explicit_euler_and_single_accel_options():
    env = make_rover_tower(integrator="explicit_euler", double_accel=False)
    s = make_state(np.zeros((4, 2)), LAND, T2R, GOAL, rover_vel=[[0.2, 0.0]] * 4)
    _, s1, _, _, _ = env.step_env(jax.random.PRNGKey(0), s, actions([2, 2, 2, 2], [0] * 4))
    # p' = p + v·dt with the old v; v' = .75·v + 1.5·e_x·dt.
    np.testing.assert_allclose(s1.rover_pos[:, 0], 0.02, atol=1e-7)
    np.testing.assert_allclose(s1.rover_vel[:, 0], 0.75 * 0.2 + 0.15, atol=1e-7)


def test_episode_truncates_at_25_steps():
    env = make_rover_tower()
    _, s = env.reset(jax.random.PRNGKey(3))
    step = jax.jit(env.step_env)
    for t in range(1, 26):
        _, s, _, dones, infos = step(jax.random.PRNGKey(t), s, actions([1] * 4, [2] * 4))
        assert set(dones) == set(env.agents) | {"__all__"}
        assert all(bool(v) == (t == 25) for v in dones.values())
        assert bool(infos["truncated"].all()) == (t == 25) and not bool(infos["terminated"].any())
        assert infos["truncated"].shape == (8,)


def test_jit_equals_no_jit_and_vmap_64():
    env = make_rover_tower(rover_observes_landmarks=True)
    key = jax.random.PRNGKey(11)
    acts = actions([1, 2, 3, 4], [4, 3, 2, 1])
    _, s0 = env.reset(key)
    s0 = s0.replace(rover_vel=jnp.full((4, 2), 0.9))  # exercises the speed clamp
    out_j = env.step_env(key, s0, acts)
    # Eager reset is skipped: op-by-op compilation of its PRNG calls costs seconds and it has no Python
    # control flow; the pairing test checks its jitted output.
    with jax.disable_jit():
        out_n = env.step_env(key, s0, acts)
    for x, y in zip(jax.tree.leaves(out_j), jax.tree.leaves(out_n)):
        np.testing.assert_allclose(x, y, atol=1e-6)

    keys = jax.random.split(key, 64)
    obs, state = jax.vmap(env.reset)(keys)
    batch = {a: jnp.full((64,), i % 5, jnp.int32) for i, a in enumerate(env.agents)}
    obs, state, rew, dones, infos = jax.jit(jax.vmap(env.step_env))(keys, state, batch)
    assert obs["rover_0"].shape == (64, 25) and obs["tower_3"].shape == (64, 8)
    assert rew["tower_0"].shape == (64,) and dones["__all__"].shape == (64,)
    assert state.tower_to_rover.shape == (64, 4)
    av = env.get_avail_actions(jax.tree.map(lambda x: x[0], state))
    assert all(np.asarray(av[a]).tolist() == [1] * 5 for a in env.agents)
    assert env.agent_classes == {"rovers": ROVERS, "towers": TOWERS}


@pytest.mark.parametrize("kw,word", [
    ({"num_pairs": 0}, "num_pairs"),
    ({"num_landmarks": 2.5}, "num_landmarks"),
    ({"dim_c": 0}, "dim_c"),
    ({"max_steps": -1}, "max_steps"),
    ({"rover_observes_landmarks": "yes"}, "rover_observes_landmarks"),
    ({"integrator": "verlet"}, "integrator"),
    ({"double_accel": None}, "double_accel"),
    ({"num_rovers": 4}, "num_rovers"),
])
def test_bad_arguments_raise_one_line_value_error(kw, word):
    with pytest.raises(ValueError) as err:
        make_rover_tower(**kw)
    msg = str(err.value)
    assert "\n" not in msg and word in msg and "allowed" in msg
