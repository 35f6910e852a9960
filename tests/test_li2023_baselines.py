"""Li et al.'s (MAMT paper) remaining baselines (issue 11, items 6 and 9): MAMD-OP on the Spread-3 variants,
LOLA-DQN's opponent-shaping correction on hand numbers, and MA-PPO's attention critic.

Cost: small jitted pieces and two tiny training programs (LOLA-DQN and MA-PPO smoke runs)."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.config import Config, ConfigError
from trustmarl.trainers import make_train

JIT = pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])


def _maybe_jit(fn, jit):
    return jax.jit(fn) if jit else fn


def _config(algo, **kw):
    base = dict(algo=algo, env="spread", num_agents=2, num_envs=4, collect_steps=4, gradient_steps=1,
                batch_size=32, learning_starts=32, total_env_steps=4 * 4 * 10, hidden=(16, 16), buffer_size=1000)
    base.update(kw)
    return Config.build(**base)


def _random_batch(t, size, key):
    """A batch of random observations (all actions available, all agents active): the actor losses read only
    these fields, so no env needs compiling."""
    from trustmarl.trainers.off_policy import OffBatch
    A, U, O = t.num_agents, t.num_actions, t.spec.obs_dim
    k_o, k_a = jax.random.split(key)
    obs = jax.random.normal(k_o, (size, A, O))
    action = jax.random.randint(k_a, (size, A), 0, U)
    return OffBatch(obs, jnp.ones((size, A, U), bool), action, jax.nn.one_hot(action, U), jnp.zeros((size, A)),
                    obs, jnp.ones((size, A, U), bool), jnp.zeros((size,)), jnp.ones((size, A), bool))


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


# --------------------------------------------------------------------------------------------------------
# MAMD-OP (App. D): trust regions from the Spread-3 variants' reward groups
# --------------------------------------------------------------------------------------------------------
def test_group_split_hand_numbers():
    from trustmarl.algos.mamd import group_split
    np.testing.assert_array_equal(np.asarray(group_split([0, 1, 2], 1.0)), [np.inf] * 3)  # Sep: MAAC
    np.testing.assert_allclose(np.asarray(group_split([0, 1, 0], 1.0)), [0.5, np.inf, 0.5])  # Mix: i, k share δ
    np.testing.assert_allclose(np.asarray(group_split([0, 0, 0], 0.6)), [0.2, 0.2, 0.2])  # Ful: MAMD's δ/n
    np.testing.assert_allclose(np.asarray(group_split([3, 3, 7, 7], 1.0)), [0.25] * 4)  # two pairs: 4 share δ


def _spread3(variant, **kw):
    return _config("mamd", num_agents=3, env_options=json.dumps({"reward_structure": variant}), **kw)


@pytest.mark.parametrize("variant,expected", [("sep", [np.inf] * 3), ("mix", [0.5, np.inf, 0.5]),
                                              ("ful", [1 / 3] * 3)])
def test_mamd_op_reads_the_spread3_variant(variant, expected):
    from trustmarl.algos.mamd import local_trust_regions
    t = make_train(_spread3(variant, trust_split="reward_groups"))
    np.testing.assert_allclose(np.asarray(local_trust_regions(t)), expected, rtol=1e-6)
    t_eq = make_train(_spread3(variant))  # plain MAMD splits equally whatever the rewards
    np.testing.assert_allclose(np.asarray(local_trust_regions(t_eq)), [1 / 3] * 3, rtol=1e-6)


def test_mamd_op_reductions_on_spread3():
    """MAMD-OP's step on Sep is MAAC's (no KL term), on Ful MAMD's (δ/3 each), on Mix MAAC's for the solo agent
    j = 1 and a KL-constrained one for i, k; compared per agent through the actor gradients on one batch of
    Spread-3 (the actor loss does not read rewards, so one batch serves every variant)."""
    from trustmarl.algos.maac import soft_actor_loss
    from trustmarl.algos.mamd import md_actor_terms, mirror_actor_loss
    t_mix = make_train(_spread3("mix", trust_split="reward_groups"))
    b = _random_batch(t_mix, 32, jax.random.PRNGKey(1))
    lr = t_mix.init_learner(jax.random.PRNGKey(0))
    moved = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(5), p.shape), lr.actor_params)
    lr = lr._replace(extra=lr.extra._replace(old_actor=lr.actor_params))  # π^old ≠ π: the KL term is live
    key = jax.random.PRNGKey(7)
    g_delta = jax.jit(jax.grad(lambda q, d: md_actor_terms(t_mix, q, lr.critic_params, b, key, d, lr.actor_params)[0]))
    g_maac = jax.jit(jax.grad(lambda q: soft_actor_loss(t_mix, q, lr, b, key)[0]))(moved)
    g_op_mix = jax.jit(jax.grad(lambda q: mirror_actor_loss(t_mix, q, lr, b, key)[0]))(moved)
    inf = jnp.inf

    def agent(grads, i):  # per-agent networks: slice i of every stacked leaf
        return np.concatenate([np.ravel(x[i]) for x in jax.tree.leaves(grads)])

    sep = g_delta(moved, jnp.array([inf, inf, inf]))
    np.testing.assert_allclose(_flat(sep), _flat(g_maac), rtol=1e-5, atol=1e-7)  # Sep: MAAC
    mix = g_delta(moved, jnp.array([0.5, inf, 0.5]))
    np.testing.assert_allclose(_flat(g_op_mix), _flat(mix), rtol=1e-5, atol=1e-7)  # the option reads the env
    ful = g_delta(moved, jnp.full((3,), 1 / 3))
    np.testing.assert_allclose(agent(mix, 1), agent(g_maac, 1), rtol=1e-5, atol=1e-7)  # Mix, j: unconstrained
    for i in (0, 2):  # Mix, i and k: constrained (δ/2), more loosely than Ful's δ/3
        assert np.abs(agent(mix, i) - agent(g_maac, i)).max() > 1e-3
        assert np.abs(agent(mix, i) - agent(ful, i)).max() > 1e-4


def test_trust_split_errors():
    with pytest.raises(ConfigError, match="reward groups"):
        make_train(_config("mamd", env="mpe_spread", trust_split="reward_groups")).init_learner(jax.random.PRNGKey(0))
    with pytest.raises(ConfigError, match="trust_split='reward_groups'"):
        make_train(_config("mamt", trust_split="reward_groups")).init_learner(jax.random.PRNGKey(0))
    with pytest.raises(ConfigError, match="trust_split"):
        Config.build(algo="mamd", trust_split="optimal")
