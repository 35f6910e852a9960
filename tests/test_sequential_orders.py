"""Sequential update orders (HAPPO, A2PO, batch-by-batch): reductions between algorithms, hand numbers for
the order rules, and smoke runs of every order with every ratio kind.

Reductions (issue: one agent ⇒ PPO; one batch ⇒ simultaneous; singleton batches in A2PO's order ⇒ A2PO;
HAPPO with the factor frozen at 1 ⇒ MAPPO with per-agent parameters) compare final parameters of short
fixed-seed runs (same minibatch keys by construction), to float tolerance.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.seams.update_orders import (permutation_groups, random_partition, semi_greedy_permutation,
                                           order_groups)
from trustmarl.trainers import make_train

from conftest import tiny

# the MAPPO tricks and the learning rate spelled out (presets differ by algorithm), so that two algorithms
# differ only in what a test varies
TRICKS = dict(lr=5e-4, critic_input="global", value_norm=True, value_clip=True, huber_delta=10.0, adv_norm=True,
              agent_id=True, use_active_masks=True, layer_norm_input=True)


def _params(**kw):
    trainer = make_train(tiny(**{"env": "mpe_spread", "measure_trust_region": False, **kw}))
    state, metrics = jax.jit(trainer)(jax.random.PRNGKey(0))
    return (state.learner.actor_params, state.learner.critic_params), metrics


def _close(a, b, atol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=atol)


def test_one_agent_happo_and_a2po_are_ppo():
    """One agent: no preceding agents (factor 1), A2PO's schedule gives ε_1 = ε, the trace is plain GAE."""
    ref, _ = _params(algo="mappo", num_agents=1, share_params=False, **TRICKS)
    happo, _ = _params(algo="happo", num_agents=1, **TRICKS)
    _close(ref, happo)
    ref_shared, _ = _params(algo="mappo", num_agents=1, share_params=True, **TRICKS)
    a2po, _ = _params(algo="a2po", num_agents=1, **TRICKS)
    _close(ref_shared, a2po)


def test_one_batch_is_the_simultaneous_update():
    ref, _ = _params(algo="mappo", num_agents=3, **TRICKS)
    one, _ = _params(algo="mappo", num_agents=3, update_order="batches", num_batches=1,
                     preceding_factor="clipped_inner", trace_correction=True, **TRICKS)
    _close(ref, one)


def test_singleton_batches_in_a2pos_order_are_a2po():
    a2po, _ = _params(algo="a2po", num_agents=3)
    b2, _ = _params(algo="a2po", num_agents=3, update_order="batches", batch_partition="singletons",
                    batch_order="semi_greedy")
    _close(a2po, b2, atol=0)


def test_happo_with_factor_one_is_mappo_with_per_agent_parameters():
    ref, _ = _params(algo="mappo", num_agents=3, share_params=False, **TRICKS)
    happo, _ = _params(algo="happo", num_agents=3, preceding_factor="none", **TRICKS)
    _close(ref, happo)
    # and the factor does matter: HAPPO proper moves the later agents differently
    happo_m, m = _params(algo="happo", num_agents=3, **TRICKS)
    assert not all(np.allclose(np.asarray(x), np.asarray(y), atol=1e-6)
                   for x, y in zip(jax.tree.leaves(ref[0]), jax.tree.leaves(happo_m[0])))
    assert np.all(np.asarray(m["preceding_factor_max"]) >= 1.0)


@pytest.mark.parametrize("jit", [False, True])
def test_semi_greedy_alternates_best_and_random(jit):
    """scores [0.1, 0.9, 0.5, 0.7]: position 0 takes agent 1 (best); position 2 takes the best remaining."""
    f = jax.jit(semi_greedy_permutation) if jit else semi_greedy_permutation
    scores = jnp.array([0.1, 0.9, 0.5, 0.7])
    for seed in range(5):
        perm = np.asarray(f(scores, jax.random.PRNGKey(seed)))
        assert sorted(perm) == [0, 1, 2, 3] and perm[0] == 1
        remaining = [a for a in (0, 2, 3) if a != perm[1]]
        assert perm[2] == max(remaining, key=lambda a: float(scores[a]))


def test_partition_and_group_order():
    g = np.asarray(random_partition(jax.random.PRNGKey(0), 7, 3))
    assert g.shape == (3, 7) and (g.sum(0) == 1).all() and sorted(g.sum(1)) == [2, 2, 3]
    np.testing.assert_array_equal(np.asarray(permutation_groups(jnp.array([2, 0, 1]))),
                                  [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    groups = jnp.eye(3, dtype=bool)
    ordered = np.asarray(order_groups(groups, jnp.array([0.2, 0.9, 0.5]), "score", jax.random.PRNGKey(0)))
    np.testing.assert_array_equal(ordered.argmax(1), [1, 2, 0])


@pytest.mark.parametrize("kw", [
    dict(algo="happo", network="gru", hidden=(16,), env="smax", map="3m"),
    dict(algo="a2po", env="mpe_spread", env_options='{"continuous": true}'),
    dict(algo="jrppo", update_order="batches", num_batches=2, preceding_factor="clipped_inner",
         trace_correction=True, trace_lambda_twice=True),
    dict(algo="ippo", update_order="semi_greedy", share_params=False),
], ids=["happo-gru-smax", "a2po-continuous", "jrppo-batches", "ippo-semi-greedy"])
def test_every_order_runs_and_logs_its_trust_region(kw):
    trainer = make_train(tiny(**{"env": "mpe_spread", "num_agents": 3, **kw}))
    _, m = jax.jit(trainer)(jax.random.PRNGKey(0))
    for k in ("policy_loss", "value_loss", "tr/sum_tv", "preceding_factor_mean"):
        assert np.isfinite(np.asarray(m[k])).all(), k
    assert int(np.asarray(m["nonfinite"]).max()) == 0


def test_sequential_keys_need_a_sequential_order():
    from trustmarl.config import Config, ConfigError
    with pytest.raises(ConfigError, match="num_batches=3 is not read by algo=mappo with update_order=simultaneous"):
        Config.build({"algo": "mappo", "num_batches": 3})
    assert Config.build({"algo": "mappo", "update_order": "batches", "num_batches": 3}).num_batches == 3
    assert "preceding_factor" in [f.name for f in Config.keys_for("happo")]
    assert "preceding_factor" not in [f.name for f in Config.keys_for("mappo")]
