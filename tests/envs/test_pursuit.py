"""Pursuit (JAX) against PettingZoo's ``pursuit_v5`` itself.

Deterministic pieces are compared exactly: both envs are put in the same
positions (PettingZoo's agent layers are poked directly) and PettingZoo's
random evader policy is replaced by one that replays the evader moves given to
the JAX env, so whole trajectories must agree step by step. The random
dynamics are compared statistically over >= 200 random-policy episodes.

The reference needs ``pettingzoo[sisl]`` (pygame-ce); without it the
comparisons are skipped and only the self-contained tests run.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxmarl.environments.multi_agent_env import MultiAgentEnv
from jaxmarl.environments.spaces import Box, Discrete

from trustmarl.envs.pursuit import (
    ENV_NAME,
    Pursuit,
    PursuitState,
    make_pursuit,
    obstacle_map,
    surround_need,
)

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pettingzoo.sisl import pursuit_v5
        from pettingzoo.sisl.pursuit.pursuit_base import Pursuit as RefPursuit
        from pettingzoo.sisl.pursuit.utils import two_d_maps
    HAVE_REF = True
except ImportError:  # pygame-ce missing: pip install 'pettingzoo[sisl]==1.27.0'
    HAVE_REF = False

needs_ref = pytest.mark.skipif(
    not HAVE_REF, reason="needs pettingzoo[sisl]==1.27.0 (pygame-ce) for the reference"
)

# Reference kwargs that are not ours.
_OWN_KWARGS = ("flatten_obs",)

_ENV_CACHE: dict = {}


def _env(**kw) -> Pursuit:
    """One env (and one set of compiled functions) per config for the file."""
    key = tuple(sorted(kw.items()))
    if key not in _ENV_CACHE:
        env = Pursuit(**kw)
        _ENV_CACHE[key] = (
            env,
            jax.jit(env.step_with_evader_actions),
            jax.jit(env.get_global_state),
        )
    return _ENV_CACHE[key]


class _Replay:
    """Stands in for PettingZoo's RandomPolicy: hands out queued moves."""

    def __init__(self) -> None:
        self.queue: list[int] = []

    def act(self, state) -> int:
        return self.queue.pop(0)


def _ref_env(kw: dict, pursuers, evaders, seed: int = 0):
    """pursuit_v5 parallel env with agents moved to the given positions."""
    ref_kw = {k: v for k, v in kw.items() if k not in _OWN_KWARGS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        par = pursuit_v5.parallel_env(**ref_kw)
        par.reset(seed=seed)
    base = par.unwrapped.env
    assert base.pursuer_layer.n_agents() == len(pursuers)
    assert base.evader_layer.n_agents() == len(evaders)
    for i, (x, y) in enumerate(np.asarray(pursuers)):
        base.pursuer_layer.set_position(i, int(x), int(y))
    for i, (x, y) in enumerate(np.asarray(evaders)):
        base.evader_layer.set_position(i, int(x), int(y))
    base.model_state[1] = base.pursuer_layer.get_state_matrix()
    base.model_state[2] = base.evader_layer.get_state_matrix()
    replay = _Replay()
    if not kw.get("freeze_evaders", False):
        base.evader_controller = replay
    return par, base, replay


def _ref_obs(par, agent):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return par.aec_env.observe(agent)


def _state(pursuers, evaders, step=0) -> PursuitState:
    return PursuitState(
        done=jnp.array(False),
        step=jnp.array(step, jnp.int32),
        pursuer_pos=jnp.asarray(pursuers, jnp.int32),
        evader_pos=jnp.asarray(evaders, jnp.int32),
        evader_alive=jnp.ones((len(evaders),), bool),
    )


def _assert_obs_equal(env: Pursuit, jax_obs: dict, ref_obs: dict) -> None:
    for a in env.agents:
        got = np.asarray(jax_obs[a])
        want = np.asarray(ref_obs[a], np.float32)
        if env.flatten_obs:
            want = want.reshape(-1)
        assert got.dtype == np.float32 and got.shape == want.shape, a
        np.testing.assert_array_equal(got, want, err_msg=a)


def _step_both(kw, state, par, replay, actions, evader_actions=None):
    """One step of each env; asserts they agree; returns the JAX outputs."""
    env, step, global_state = _env(**kw)
    frozen = kw.get("freeze_evaders", False)
    if evader_actions is None or frozen:
        evader_actions = np.full((env.n_evaders,), 4)
    out = step(state, actions, jnp.asarray(evader_actions, jnp.int32))
    obs, new_state, rew, dones, infos = out
    if not frozen:
        # PettingZoo moves only the evaders still in play, in index order.
        alive = np.asarray(new_state.evader_alive)
        replay.queue = [int(a) for a in np.asarray(evader_actions)[alive]]
    ref_obs, ref_rew, ref_term, ref_trunc, _ = par.step({a: int(v) for a, v in actions.items()})
    assert not replay.queue
    _assert_obs_equal(env, obs, ref_obs)
    for a in env.agents:
        np.testing.assert_allclose(float(rew[a]), ref_rew[a], rtol=0, atol=2e-6, err_msg=a)
        assert bool(infos["terminated"][0]) == ref_term[a]
        assert bool(infos["truncated"][0]) == ref_trunc[a]
        assert bool(dones[a]) == (ref_term[a] or ref_trunc[a])
    assert bool(dones["__all__"]) == (not par.agents)
    np.testing.assert_array_equal(np.asarray(global_state(new_state)), par.state())
    return out


# --------------------------------------------------------------------- API


def test_registry_hooks_and_spaces():
    assert ENV_NAME == "pursuit"
    env = make_pursuit()
    assert isinstance(env, MultiAgentEnv) and isinstance(env, Pursuit)
    assert env.name == "pursuit" and env.max_steps == 500
    assert env.agents == [f"pursuer_{i}" for i in range(8)] and env.num_agents == 8
    for a in env.agents:
        assert isinstance(env.action_space(a), Discrete) and env.action_space(a).n == 5
        space = env.observation_space(a)
        assert isinstance(space, Box)
        assert space.shape == (7, 7, 3) and space.low == 0 and space.high == 30
    obs, state = env.reset(jax.random.key(0))
    assert all(obs[a].shape == (7, 7, 3) and obs[a].dtype == jnp.float32 for a in env.agents)
    avail = env.get_avail_actions(state)
    assert set(avail) == set(env.agents)
    assert all(avail[a].shape == (5,) and bool(avail[a].all()) for a in env.agents)
    assert env.get_global_state(state).shape == (16, 16, 3)
    flat = make_pursuit(flatten_obs=True, obs_range=5, n_pursuers=3)
    assert flat.observation_space("pursuer_2").shape == (75,)
    assert flat.reset(jax.random.key(0))[0]["pursuer_2"].shape == (75,)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n_pursuers=0), "n_pursuers"),
        (dict(n_pursuers=2.0), "n_pursuers"),
        (dict(n_evaders=0), "n_evaders"),
        (dict(n_evaders=True), "n_evaders"),
        (dict(max_cycles=0), "max_cycles"),
        (dict(x_size=1), "x_size"),
        (dict(y_size="16"), "y_size"),
        (dict(obs_range=6), "obs_range"),
        (dict(obs_range=-1), "obs_range"),
        (dict(n_catch=0), "n_catch"),
        (dict(tag_reward=float("nan")), "tag_reward"),
        (dict(catch_reward="5"), "catch_reward"),
        (dict(urgency_reward=float("inf")), "urgency_reward"),
        (dict(shared_reward=1), "shared_reward"),
        (dict(surround=None), "surround"),
        (dict(freeze_evaders="no"), "freeze_evaders"),
        (dict(flatten_obs=0), "flatten_obs"),
    ],
)
def test_bad_arguments_raise_one_line_value_error(kwargs, name):
    with pytest.raises(ValueError) as err:
        make_pursuit(**kwargs)
    msg = str(err.value)
    assert msg.startswith(name + " must be") and repr(kwargs[name]) in msg
    assert "\n" not in msg


def test_auto_reset_step_jits_and_vmaps():
    env = make_pursuit(max_cycles=3)
    n_envs = 4
    keys = jax.random.split(jax.random.key(1), n_envs)
    obs, state = jax.vmap(env.reset)(keys)
    step = jax.jit(jax.vmap(env.step))
    acts = {a: jnp.full((n_envs,), i % 5) for i, a in enumerate(env.agents)}
    for t in range(1, 4):
        obs, state, rew, dones, infos = step(jax.random.split(jax.random.key(t), n_envs), state, acts)
        assert obs["pursuer_0"].shape == (n_envs, 7, 7, 3)
        assert rew["pursuer_7"].shape == (n_envs,) and dones["__all__"].shape == (n_envs,)
        assert all(v.shape == (n_envs, 8) for v in infos.values())
    # Cycle 3 hits max_cycles: truncation (not termination), then auto-reset.
    assert bool(dones["__all__"].all()) and bool(infos["truncated"].all())
    assert not bool(infos["terminated"].any())
    assert int(state.step.max()) == 0 and bool(state.evader_alive.all())


def test_step_matches_jaxmarl_base_step():
    """The lazy auto-reset gives exactly what MultiAgentEnv.step gives."""
    env = make_pursuit(max_cycles=5)
    n_envs = 6
    _, state = jax.vmap(env.reset)(jax.random.split(jax.random.key(2), n_envs))
    # Envs at different cycle counts: some of the batch resets, some not.
    state = state.replace(step=jnp.array([0, 4, 2, 4, 1, 3], jnp.int32))
    keys = jax.random.split(jax.random.key(3), n_envs)
    acts = {a: jnp.arange(n_envs) % 5 for a in env.agents}
    ours = jax.jit(jax.vmap(env.step))(keys, state, acts)
    base = jax.jit(jax.vmap(lambda k, s, a: MultiAgentEnv.step(env, k, s, a)))(keys, state, acts)
    for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(base)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert np.asarray(ours[3]["__all__"]).tolist() == [False, True, False, True, False, False]


def test_out_of_range_actions_are_clipped():
    env, step, _ = _env(freeze_evaders=True)
    state = _state([[3, 3]] * 8, [[0, 15]] * 30)
    acts = {a: v for a, v in zip(env.agents, [-3, 0, 9, 4, 5, 1, 2, 3])}
    _, new, _, _, _ = step(state, acts, jnp.full((30,), 4))
    moved = np.asarray(new.pursuer_pos).tolist()
    assert moved == [[2, 3], [2, 3], [3, 3], [3, 3], [3, 3], [4, 3], [3, 4], [3, 2]]


# ------------------------------------------------------- static structure


@needs_ref
@pytest.mark.parametrize("size", [(16, 16), (9, 12), (12, 7), (5, 5), (2, 3), (40, 24)])
def test_map_and_surround_table_match_reference(size):
    xs, ys = size
    ref_map = two_d_maps.rectangle_map(xs, ys)
    np.testing.assert_array_equal(obstacle_map(xs, ys), ref_map == -1)
    ref = RefPursuit(x_size=xs, y_size=ys, n_pursuers=1, n_evaders=1)
    need = surround_need(ref_map == -1)
    want = [[ref.need_to_surround(x, y) for y in range(ys)] for x in range(xs)]
    np.testing.assert_array_equal(need, np.array(want))


def test_spawn_rules_hold():
    env = make_pursuit()
    _, state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(4), 512))
    blocked = obstacle_map(16, 16)
    for pos in (np.asarray(state.pursuer_pos), np.asarray(state.evader_pos)):
        assert pos.min() >= 0 and pos.max() <= 15
        assert not blocked[pos[..., 0], pos[..., 1]].any()
        gap = np.abs(pos[:, :, None, :] - pos[:, None, :, :]).sum(-1)
        gap[:, np.arange(pos.shape[1]), np.arange(pos.shape[1])] = 99
        assert gap.min() >= 2  # no group mate on the same or a 4-adjacent cell
    # A group too large for the spacing rule (the reference hangs) still
    # lands on open cells.
    crowded = make_pursuit(n_pursuers=70, n_evaders=1, x_size=8, y_size=8)
    _, cs = jax.jit(jax.vmap(crowded.reset))(jax.random.split(jax.random.key(5), 64))
    pos = np.asarray(cs.pursuer_pos)
    assert not obstacle_map(8, 8)[pos[..., 0], pos[..., 1]].any()


@needs_ref
def test_spawn_distribution_matches_reference():
    """Sequential spaced spawning favours cells by neighbourhood; compare."""
    env = make_pursuit()
    blocked = obstacle_map(16, 16)
    n_open_nbrs = np.zeros((16, 16), int)
    for dx, dy in [(-1, 0), (1, 0), (0, 1), (0, -1)]:
        for x in range(16):
            for y in range(16):
                u, v = x + dx, y + dy
                n_open_nbrs[x, y] += 0 <= u < 16 and 0 <= v < 16 and not blocked[u, v]

    def fractions(pos):  # per reset: share of agents on cells with 2/3/4 open neighbours
        cls = n_open_nbrs[pos[..., 0], pos[..., 1]]
        return np.stack([(cls == c).mean(-1) for c in (2, 3, 4)], -1)

    _, state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(6), 4000))
    ref = RefPursuit()
    ref._seed(7)
    ref_p, ref_e = [], []
    for _ in range(1000):
        ref.reset()
        ref_p.append([ref.pursuer_layer.get_position(i).copy() for i in range(8)])
        ref_e.append([ref.evader_layer.get_position(i).copy() for i in range(30)])
    for ours, theirs in [
        (fractions(np.asarray(state.pursuer_pos)), fractions(np.array(ref_p))),
        (fractions(np.asarray(state.evader_pos)), fractions(np.array(ref_e))),
    ]:
        se = np.sqrt(ours.var(0) / len(ours) + theirs.var(0) / len(theirs))
        assert np.all(np.abs(ours.mean(0) - theirs.mean(0)) < 5 * se + 1e-9), (
            ours.mean(0),
            theirs.mean(0),
            se,
        )


# ------------------------------------------------- exact trajectory replay

TRAJECTORY_CONFIGS = [
    # The default game.
    (dict(), 0, 120),
    # Crowded: many catches, per-agent rewards.
    (dict(n_pursuers=20, n_evaders=15, x_size=10, y_size=10, shared_reward=False), 1, 120),
    # Catch by standing on the evader, non-square map, small window.
    (
        dict(n_pursuers=22, n_evaders=15, x_size=9, y_size=12, obs_range=5, surround=False,
             n_catch=2, shared_reward=False),
        2,
        120,
    ),
    # Frozen evaders, other rewards, truncation at 40, flat observations.
    (
        dict(n_pursuers=20, n_evaders=10, x_size=12, y_size=7, freeze_evaders=True, max_cycles=40,
             tag_reward=0.3, catch_reward=2.0, urgency_reward=-0.5, flatten_obs=True),
        4,
        60,
    ),
    # Window larger than the map; one-pursuer catches end the episode early.
    (dict(n_pursuers=12, n_evaders=4, x_size=8, y_size=8, obs_range=19, surround=False,
          n_catch=1), 5, 120),
]


@needs_ref
@pytest.mark.parametrize("kw, seed, n_steps", TRAJECTORY_CONFIGS)
def test_trajectory_matches_reference_exactly(kw, seed, n_steps):
    """Random pursuer and evader moves, replayed in both envs, agree exactly.

    Checked at every step: every observation (bitwise), every reward (to
    float32 rounding of PettingZoo's float64 sums), termination and
    truncation flags, the global state, and where evaders were caught.
    """
    env, _, _ = _env(**kw)
    obs, state = env.reset(jax.random.key(seed))
    par, base, replay = _ref_env(kw, state.pursuer_pos, state.evader_pos, seed)
    _assert_obs_equal(env, obs, {a: _ref_obs(par, a) for a in env.agents})
    rng = np.random.default_rng(seed)
    caught = 0
    for _ in range(n_steps):
        actions = {a: int(rng.integers(5)) for a in env.agents}
        obs, state, rew, dones, infos = _step_both(
            kw, state, par, replay, actions, rng.integers(5, size=env.n_evaders)
        )
        caught += int(infos["evaders_caught"][0])
        alive = np.flatnonzero(np.asarray(state.evader_alive))
        ref_ev = [base.evader_layer.get_position(i).tolist() for i in range(len(alive))]
        assert np.asarray(state.evader_pos)[alive].tolist() == ref_ev
        if bool(dones["__all__"]):
            break
    # Make sure the catch rule was actually exercised where it can be.
    if kw.get("n_pursuers", 8) > 8:
        assert caught > 0


# ------------------------------------------------------ scripted scenarios

STAY, LEFT, RIGHT, UP, DOWN = 4, 0, 1, 2, 3  # UP is y + 1, DOWN is y - 1
FAR = [14, 14]  # an evader nobody is near, so the episode goes on


def _scripted(kw, pursuers, evaders, moves):
    env, _, _ = _env(freeze_evaders=True, **kw)
    state = _state(pursuers, evaders)
    par, _, replay = _ref_env(dict(freeze_evaders=True, **kw), pursuers, evaders)
    actions = dict(zip(env.agents, moves))
    obs, new, rew, dones, infos = _step_both(
        dict(freeze_evaders=True, **kw), state, par, replay, actions
    )
    return np.array([float(rew[a]) for a in env.agents]), new, dones, infos


@needs_ref
def test_surround_catch_rewards_takers_once_and_late_mover_by_sub_step():
    # Evader at (2, 2) needs all 4 neighbours. Pursuer 3 closes the ring this
    # cycle; pursuer 4 shares pursuer 0's cell; pursuer 5 is two cells away.
    pursuers = [[1, 2], [3, 2], [2, 3], [2, 0], [1, 2], [2, 5]]
    rew, new, dones, infos = _scripted(
        dict(n_pursuers=6, n_evaders=2, shared_reward=False),
        pursuers,
        [[2, 2], FAR],
        [STAY, STAY, STAY, UP, STAY, STAY],
    )
    assert np.asarray(new.evader_alive).tolist() == [False, True]
    assert int(infos["evaders_caught"][0]) == 1 and not bool(dones["__all__"])
    # Pursuer 3 (k = 3 of n = 6) is next to the evader only after moving: it
    # is counted at its old cell on 3 sub-steps and at its new one on 3.
    tag3 = 0.01 * (3 * 0 + 3 * 1) / 6
    np.testing.assert_allclose(rew, [4.91, 4.91, 4.91, 5 - 0.1 + tag3, 4.91, -0.1], atol=1e-6)


@needs_ref
def test_corner_needs_two_and_edge_tag_counts_own_cell_twice():
    # Evader in the corner: 2 open neighbours. Pursuer 2 stands on the evader
    # (not a neighbour, so no catch share) and its clipped neighbour indices
    # point twice at its own cell. Last evader caught: termination, shared.
    rew, new, dones, infos = _scripted(
        dict(n_pursuers=3, n_evaders=1),
        [[1, 0], [0, 1], [0, 0]],
        [[0, 0]],
        [STAY, STAY, STAY],
    )
    local = np.array([0.01 + 5 - 0.1, 0.01 + 5 - 0.1, 0.02 - 0.1])
    np.testing.assert_allclose(rew, np.full(3, local.mean()), atol=1e-6)
    assert bool(dones["__all__"]) and bool(infos["terminated"][0])
    assert not bool(infos["truncated"][0])


@needs_ref
def test_last_evader_caught_on_last_cycle_is_truncation_only():
    _, _, dones, infos = _scripted(
        dict(n_pursuers=2, n_evaders=1, max_cycles=1), [[1, 0], [0, 1]], [[0, 0]], [STAY, STAY]
    )
    assert bool(dones["__all__"]) and bool(infos["truncated"][0])
    assert not bool(infos["terminated"][0])


@needs_ref
@pytest.mark.parametrize("n_ring, caught", [(3, True), (2, False)])
def test_obstacle_side_counts_as_surrounded(n_ring, caught):
    # (4, 6) touches the central block at (5, 6): 3 pursuers suffice.
    ring = [[3, 6], [4, 7], [4, 5]][:n_ring]
    _, new, _, infos = _scripted(
        dict(n_pursuers=n_ring, n_evaders=2), ring, [[4, 6], FAR], [STAY] * n_ring
    )
    assert bool(new.evader_alive[0]) != caught


@needs_ref
def test_one_pursuer_in_two_catches_and_two_evaders_on_one_cell():
    # Two evaders share (2, 2); another sits at (4, 2); (3, 2) borders both.
    pursuers = [[1, 2], [2, 3], [2, 1], [3, 2], [5, 2], [4, 3], [4, 1]]
    rew, new, _, infos = _scripted(
        dict(n_pursuers=7, n_evaders=4, shared_reward=False),
        pursuers,
        [[2, 2], [2, 2], [4, 2], FAR],
        [STAY] * 7,
    )
    assert np.asarray(new.evader_alive).tolist() == [False, False, False, True]
    assert int(infos["evaders_caught"][0]) == 3
    # (3, 2) sees 2 + 1 evaders and still gets one catch_reward.
    np.testing.assert_allclose(rew[3], 0.03 + 5 - 0.1, atol=1e-6)


@needs_ref
def test_catch_by_standing_on_evader():
    # surround=False, n_catch=2: pursuers 0 and 1 step onto (7, 2); the lone
    # pursuer on the second evader is not enough.
    rew, new, _, _ = _scripted(
        dict(n_pursuers=3, n_evaders=2, surround=False, n_catch=2, shared_reward=False),
        [[6, 2], [7, 3], [12, 14]],
        [[7, 2], [12, 14]],
        [RIGHT, DOWN, STAY],
    )
    assert np.asarray(new.evader_alive).tolist() == [False, True]
    # Pursuer 1 (k = 1 of 3) leaves a cell next to the evader: 1 sub-step at
    # the old cell, 2 on the evader's own cell (not a neighbour).
    np.testing.assert_allclose(rew, [4.9, 0.01 * 1 / 3 + 4.9, -0.1], atol=1e-6)


# ------------------------------------------------- random-policy statistics


def _jax_random_episodes(env: Pursuit, n_episodes: int, seed: int):
    """Per-episode mean per-step team reward and number of catches."""

    def episode(key):
        k_reset, k_run = jax.random.split(key)
        _, state = env.reset(k_reset)

        def body(carry, key):
            state, total, steps, done = carry
            k_act, k_env = jax.random.split(key)
            acts = jax.random.randint(k_act, (env.num_agents,), 0, 5)
            _, state2, rew, dones, _ = env.step_env(
                k_env, state, {a: acts[i] for i, a in enumerate(env.agents)}
            )
            live = ~done
            total = total + jnp.where(live, jnp.mean(jnp.stack(list(rew.values()))), 0.0)
            steps = steps + live
            state = jax.tree.map(lambda n, o: jnp.where(live, n, o), state2, state)
            return (state, total, steps, done | dones["__all__"]), None

        init = (state, jnp.float32(0), jnp.int32(0), jnp.array(False))
        (state, total, steps, _), _ = jax.lax.scan(
            body, init, jax.random.split(k_run, env.max_cycles)
        )
        return total / steps, env.n_evaders - state.evader_alive.sum()

    keys = jax.random.split(jax.random.key(seed), n_episodes)
    mean_rew, catches = jax.jit(jax.vmap(episode))(keys)
    return np.asarray(mean_rew, np.float64), np.asarray(catches, np.float64)


def _ref_random_episodes(kw: dict, n_episodes: int, seed: int):
    """The same statistics from pursuit_v5's parallel env, random actions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        par = pursuit_v5.parallel_env(**kw)
    rng = np.random.default_rng(seed)
    mean_rew, catches = [], []
    for ep in range(n_episodes):
        par.reset(seed=seed * 100_003 + ep)
        base = par.unwrapped.env
        total, steps = 0.0, 0
        while par.agents:
            acts = {a: int(rng.integers(5)) for a in par.agents}
            _, rew, _, _, _ = par.step(acts)
            total += float(np.mean(list(rew.values())))
            steps += 1
        mean_rew.append(total / steps)
        catches.append(base.n_evaders - base.evader_layer.n_agents())
    return np.array(mean_rew), np.array(catches, np.float64)


STAT_CONFIGS = [
    # The default game, cut to 15 cycles (catches are rare: mostly tag rewards).
    (dict(max_cycles=15), 200),
    # A small crowded map where random pursuers catch ~0.75 evaders in 25 cycles.
    (dict(x_size=8, y_size=8, n_evaders=10, max_cycles=25), 200),
]


@needs_ref
@pytest.mark.slow
@pytest.mark.parametrize("kw, n_ref", STAT_CONFIGS)
def test_random_policy_statistics_match_reference(kw, n_ref):
    """Per-step mean reward and catches per episode agree in distribution.

    Tolerance: |mean_jax - mean_ref| < 4.5 combined standard errors (plus a
    float slack), from 1024 JAX and ``n_ref`` >= 200 PettingZoo episodes.
    Seeds are fixed, so the test is deterministic; 4.5 sigma would wrongly
    fail about once in 150,000 seeds.
    """
    env = make_pursuit(**kw)
    ours = _jax_random_episodes(env, 1024, seed=11)
    theirs = _ref_random_episodes(kw, n_ref, seed=12)
    for name, a, b in zip(("mean step reward", "catches/episode"), ours, theirs):
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        assert abs(a.mean() - b.mean()) < 4.5 * se + 1e-6, (name, a.mean(), b.mean(), se)
    # The crowded config must actually exercise catches.
    if kw.get("x_size") == 8:
        assert ours[1].mean() > 0.5 and theirs[1].mean() > 0.5
