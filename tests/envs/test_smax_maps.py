"""SMAX seed maps: table consistency, idempotent registration, agent counts, jitted steps.

Cost control: compiling HeuristicEnemySMAX's reset+step takes 5-20 s per map on 2 CPU cores,
so agent counts and observation/action shapes of *every* map (built-in and registered) are
checked by tracing ``reset`` with ``jax.eval_shape`` (no compilation), and only a
representative subset of the registered maps is reset and stepped under jit (vmap over 2 envs x
5 steps, random *valid* actions from the masks): the smallest (2m_vs_1z, 3 units), a mixed-type
asymmetric one (MMM2_like, 22 units) and the largest (bane_vs_bane_like, 48 units). The others
differ from these only in the unit-type array, which ``test_seed_table_is_consistent`` checks.
"""
import importlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.envs import smax_maps
from jaxmarl.environments.smax import Scenario, map_name_to_scenario, register_scenario
from jaxmarl.environments.smax import smax_env

REGISTERED = [m.name for m in smax_maps.SEED_MAPS if m.expressible and m.status != "builtin"]
STEPPED = ["2m_vs_1z", "MMM2_like", "bane_vs_bane_like"]
STATUSES = ("builtin", "registered", "substitute for ", "inexpressible: ")


def test_seed_table_is_consistent():
    names = [m.name for m in smax_maps.SEED_MAPS]
    assert len(names) == len(set(names))
    for m in smax_maps.SEED_MAPS:
        assert m.status.startswith(STATUSES), m
        assert sum(n for _, n in m.allies) == m.num_allies, m.name
        assert sum(n for _, n in m.enemies) == m.num_enemies, m.name
        if m.status == "builtin":
            # our composition must describe SMAX's built-in exactly (same type order too)
            assert smax_maps._same_scenario(map_name_to_scenario(m.name), smax_maps._scenario_for(m)), m.name
        elif m.expressible:
            assert m.name in smax_env.MAP_NAME_TO_SCENARIO
        else:
            assert m.substitute in REGISTERED, m.name
            assert m.name not in smax_env.MAP_NAME_TO_SCENARIO
        if m.status.startswith("substitute for "):
            assert m.status.removeprefix("substitute for ") in names
    # every map the two seed papers name is in the table
    for name in ("2s_vs_1sc", "3s_vs_5z", "2s3z", "6h_vs_8z", "1c3s5z", "10m_vs_11m", "27m_vs_30m", "3s5z",
                 "bane_vs_bane", "MMM2", "corridor", "3s5z_vs_3s6z", "2c_vs_64zg", "8m_vs_9m"):
        assert name in names


def test_registration_is_idempotent():
    before = dict(smax_env.MAP_NAME_TO_SCENARIO)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = smax_maps.register_seed_maps()
        second = smax_maps.register_seed_maps()
        importlib.reload(smax_maps)  # importing again re-runs the module-level registration
    assert first == second == tuple(REGISTERED)
    after = smax_env.MAP_NAME_TO_SCENARIO
    assert set(after) == set(before)
    for name in before:
        assert smax_maps._same_scenario(before[name], after[name]), name


def test_conflicting_map_is_kept_with_warning_unless_overwrite():
    ours = map_name_to_scenario("8m_vs_9m")
    other = Scenario(jnp.zeros((17,), dtype=jnp.uint8) + 1, 8, 9, False, False)
    register_scenario("8m_vs_9m", other)
    try:
        with pytest.warns(UserWarning, match="8m_vs_9m"):
            names = smax_maps.register_seed_maps()
        assert "8m_vs_9m" not in names
        assert map_name_to_scenario("8m_vs_9m") is other
        assert "8m_vs_9m" in smax_maps.register_seed_maps(overwrite=True)
        assert smax_maps._same_scenario(map_name_to_scenario("8m_vs_9m"), ours)
    finally:
        register_scenario("8m_vs_9m", ours)


def test_list_maps_covers_registry_and_table():
    rows = smax_maps.list_maps()
    assert {r[0] for r in rows} == set(smax_env.MAP_NAME_TO_SCENARIO)
    table = {m.name: m for m in smax_maps.SEED_MAPS}
    for name, na, ne, note in rows:
        sc = map_name_to_scenario(name)
        assert (na, ne) == (sc.num_allies, sc.num_enemies)
        assert note
        if name in table:
            assert (na, ne) == (table[name].num_allies, table[name].num_enemies)
            if table[name].status != "builtin":
                assert "trustmarl" in note


def test_stepped_subset_is_registered():
    assert set(STEPPED) <= set(REGISTERED)


def test_every_map_has_right_agent_counts_and_shapes():
    key = jax.random.PRNGKey(0)
    for name, na, ne, _ in smax_maps.list_maps():
        env = smax_maps.make_smax(name)
        assert env.agents == [f"ally_{i}" for i in range(na)], name
        assert env.num_enemies == ne
        obs, state = jax.eval_shape(env.reset, key)
        assert set(obs) == set(env.agents) | {"world_state"}
        assert all(obs[a].shape == env.observation_space(a).shape for a in env.agents)
        assert state.state.unit_types.shape == (na + ne,)
        assert all(env.action_space(a).n == ne + env.num_movement_actions for a in env.agents)


@pytest.mark.parametrize("name", STEPPED)
def test_registered_map_resets_and_steps_under_jit(name):
    env = smax_maps.make_smax(name)
    scenario = map_name_to_scenario(name)
    steps = 5

    def rollout(key):
        key, k_reset = jax.random.split(key)
        obs, state = env.reset(k_reset)

        def body(state, k):
            avail = env.get_avail_actions(state)
            ks = jax.random.split(k, len(env.agents) + 1)
            acts = {a: jax.random.categorical(ks[i], jnp.where(avail[a] > 0, 0.0, -jnp.inf))
                    for i, a in enumerate(env.agents)}
            valid = jnp.stack([avail[a][acts[a]] > 0 for a in env.agents])
            obs, state, rew, dones, _ = env.step(ks[-1], state, acts)
            out = (obs[env.agents[0]], jnp.stack([rew[a] for a in env.agents]), dones["__all__"], valid)
            return state, out

        state, outs = jax.lax.scan(body, state, jax.random.split(key, steps))
        return obs, state, outs

    obs0, state, (obs, rew, done, valid) = jax.jit(jax.vmap(rollout))(jax.random.split(jax.random.PRNGKey(1), 2))
    assert obs0[env.agents[0]].shape == (2, env.obs_size)
    assert obs.shape == (2, steps, env.obs_size)
    assert rew.shape == (2, steps, scenario.num_allies)
    assert bool(jnp.all(valid))
    assert np.isfinite(np.asarray(rew)).all() and np.isfinite(np.asarray(obs)).all()
    np.testing.assert_array_equal(np.asarray(state.state.unit_types[0]), np.asarray(scenario.unit_types))


def test_bad_names_raise_value_error():
    with pytest.raises(ValueError, match="not a SMAX map"):
        smax_maps.make_smax("MMM2")
    with pytest.raises(ValueError, match="not in SEED_MAPS"):
        smax_maps.seed_map("4m")
    assert smax_maps.seed_map("MMM2").substitute == "MMM2_like"
