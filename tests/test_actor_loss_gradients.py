"""Gradients of the trainer's actor loss with respect to the network parameters, on hand-set ratios and
advantages (issue 9, item 5): the joint clipped surrogate (Sun et al. eq. 7 / Algorithm 1) and the independent
one (eq. 4), with a dead agent in the batch.

For a step whose clip does not bind, ``d min(r Â, clip(r) Â) / dθ = Â · r · Σ_{i active} ∇θ log π_i(a_i|s)``
for the joint ratio ``r = Π_i r_i`` (``∂r/∂ log π_i = r``), and ``Â_i r_i ∇θ log π_i`` per entry for the
independent ratio; it is zero where the clip binds and for dead agents. The ``∇θ log π_i(a_i|s)`` are taken
from the network alone (``policy_logp``), never through the loss, and the ratios are set by choosing the old
log-probs, so the expected gradient is the formula evaluated on numbers fixed in this file:

joint, ε = 0.2, three steps (loss normalised by the 3 steps with an active agent)::

    step  r_i                    alive       r = Π r_i (alive)   Â     min(rÂ, clip(r)Â)     gradient weight
    0     1.1, 1.15, 1.0         T T T       1.265 > 1.2         +1    1.2 (clip binds)      0
    1     1.05, 0.95, 1.1        T T T       1.09725             +0.5  0.548625              0.5 · 1.09725
    2     0.9, 1.25, (5.0)       T T F       1.125               −2    −2.25                 −2 · 1.125, agents 0-1

    L = −(1.2 + 0.548625 − 2.25) / 3 = 0.167125

independent (the same batch, per-agent advantages, 8 alive entries)::

    entry  r     Â_i   min(r Â, clip(r) Â)           weight Â_i r_i
    (0,0)  1.1   +1    1.1                           1.1
    (0,1)  1.15  −1    −1.15                         −1.15
    (0,2)  1.0   +2    2.0                           2.0
    (1,0)  1.05  +1    1.05                          1.05
    (1,1)  0.95  +1    0.95                          0.95
    (1,2)  1.1   −3    −3.3                          −3.3
    (2,0)  0.9   +3    2.7                           2.7
    (2,1)  1.25  +3    clip: 1.2 · 3 = 3.6 (binds)   0
    (2,2)  dead

    L = −(1.1 − 1.15 + 2 + 1.05 + 0.95 − 3.3 + 2.7 + 3.6) / 8 = −6.95 / 8
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.trainers import Batch, make_train

from conftest import tiny

RATIOS = np.array([[1.1, 1.15, 1.0], [1.05, 0.95, 1.1], [0.9, 1.25, 5.0]])
ALIVE = np.array([[True, True, True], [True, True, True], [True, True, False]])
ADV_JOINT = np.array([1.0, 0.5, -2.0])
ADV = np.array([[1.0, -1.0, 2.0], [1.0, 1.0, -3.0], [3.0, 3.0, 3.0]])
ACTIONS = np.array([[0, 1, 2], [3, 4, 0], [1, 2, 3]])
JOINT_LOSS = -(1.2 + 0.548625 - 2.25) / 3
JOINT_WEIGHTS = np.array([[0.0] * 3, [0.548625] * 3, [-2.25] * 2 + [0.0]])
INDEP_LOSS = -6.95 / 8
INDEP_WEIGHTS = np.array([[1.1, -1.15, 2.0], [1.05, 0.95, -3.3], [2.7, 0.0, 0.0]])


def _trainer(algo, **kw):
    return make_train(tiny(algo=algo, env="mpe_spread", num_agents=3, ent_coef=0.0, clip_eps=0.2, adv_norm=False,
                           **kw))


@pytest.fixture(scope="module")
def setup():
    """Trainers (joint and independent ratio; same network shapes), their shared parameters and a batch of three
    states, one per env, whose old log-probs give the ratios above."""
    joint, indep = _trainer("jrppo"), _trainer("mappo")
    params = jax.jit(joint.init_learner)(jax.random.PRNGKey(0)).actor_params
    A, U = 3, joint.spec.num_actions
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 3, A, joint.actor_in_dim))  # distinct states: distinct ∇ log π
    batch = Batch(actor_in=x, critic_in=jnp.zeros((1, 3, A, joint.critic_in_dim)), avail=jnp.ones((1, 3, A, U), bool),
                  action=jnp.asarray(ACTIONS)[None], logp=jnp.zeros((1, 3, A)), dist=jnp.zeros((1, 3, A, U)),
                  active=jnp.asarray(ALIVE)[None], reset=jnp.ones((1, 3), bool), value=jnp.zeros((1, 3, A)),
                  target=jnp.zeros((1, 3, A)), adv=jnp.asarray(ADV, jnp.float32)[None],
                  adv_joint=jnp.asarray(ADV_JOINT, jnp.float32)[None],
                  actor_h=jnp.zeros((3, A, joint.hidden_size)), critic_h=jnp.zeros((3, A, joint.hidden_size)))
    logp_new = joint.policy_logp(params, batch)
    batch = batch._replace(logp=logp_new - jnp.log(jnp.asarray(RATIOS, jnp.float32))[None])
    # ∇θ log π_i(a_i|s_t) for every (t, i), from the network only: leaves [3, A, *param_shape]
    jac = jax.jit(jax.jacrev(lambda p: joint.policy_logp(p, batch)[0]))(params)
    return joint, indep, params, batch, jac


def _expected_grad(jac, weights, n):
    """−(1/n) Σ_{t,i} w_{t,i} ∇θ log π_i(a_i|s_t)."""
    w = np.asarray(weights, np.float64)
    return jax.tree.map(lambda leaf: -np.tensordot(w, np.asarray(leaf, np.float64), axes=2) / n, jac)


def _check_grads(got, want):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)


def _loss_and_grad(trainer, jit):
    fn = jax.value_and_grad(lambda p, b: trainer.actor_loss(p, b)[0])
    return jax.jit(fn) if jit else fn


@pytest.mark.parametrize("jit", [False, True])
def test_joint_surrogate_gradient_is_adv_times_ratio_times_summed_score(setup, jit):
    joint, _, params, batch, jac = setup
    loss, grads = _loss_and_grad(joint, jit)(params, batch)
    assert float(loss) == pytest.approx(JOINT_LOSS, rel=1e-4)
    _check_grads(grads, _expected_grad(jac, JOINT_WEIGHTS, 3))
    assert any(float(jnp.abs(g).max()) > 1e-3 for g in jax.tree.leaves(grads))  # not vacuously zero


@pytest.mark.parametrize("jit", [False, True])
def test_joint_surrogate_gradient_is_zero_where_the_clip_binds(setup, jit):
    """Only step 0 (r = 1.265 > 1.2, Â > 0) alive: the loss is −1.2 and every parameter gradient exactly 0."""
    joint, _, params, batch, _ = setup
    only0 = batch._replace(active=jnp.zeros_like(batch.active).at[0, 0].set(True))
    loss, grads = _loss_and_grad(joint, jit)(params, only0)
    assert float(loss) == pytest.approx(-1.2, rel=1e-5)
    for g in jax.tree.leaves(grads):
        np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("algo", ["jrppo", "mappo"])
def test_dead_agent_leaves_the_actor_loss_and_gradient_unchanged(setup, algo):
    """Agent 2 is dead at step 2: its input, action, old log-prob and advantage do not reach the loss or the
    gradient; with use_active_masks=false it would (its ratio 5 enters the product / the mean)."""
    joint, indep, params, batch, _ = setup
    trainer = joint if algo == "jrppo" else indep
    f = jax.jit(_loss_and_grad(trainer, False))
    loss, grads = f(params, batch)
    dead = (0, 2, 2)
    changed = batch._replace(actor_in=batch.actor_in.at[dead].set(7.0), action=batch.action.at[dead].set(4),
                             logp=batch.logp.at[dead].set(-9.0), adv=batch.adv.at[dead].set(-50.0))
    loss2, grads2 = f(params, changed)
    assert float(loss2) == float(loss)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads2)):
        np.testing.assert_array_equal(a, b)
    unmasked = _trainer(algo, use_active_masks=False)
    loss3, _ = jax.jit(_loss_and_grad(unmasked, False))(params, batch)
    if algo == "jrppo":  # step 2's joint ratio becomes 1.125 · 5 = 5.625, Â = −2: −11.25 instead of −2.25
        assert float(loss3) == pytest.approx(-(1.2 + 0.548625 - 11.25) / 3, rel=1e-4)
    else:  # entry (2,2): r = 5, Â = 3, clipped to 1.2 · 3 = 3.6, and 9 entries
        assert float(loss3) == pytest.approx(-(6.95 + 3.6) / 9, rel=1e-4)


@pytest.mark.parametrize("jit", [False, True])
def test_independent_surrogate_gradient_per_entry_with_a_dead_agent(setup, jit):
    _, indep, params, batch, jac = setup
    loss, grads = _loss_and_grad(indep, jit)(params, batch)
    assert float(loss) == pytest.approx(INDEP_LOSS, rel=1e-4)
    _check_grads(grads, _expected_grad(jac, INDEP_WEIGHTS, 8))
    assert math.isclose(-INDEP_LOSS * 8, 1.1 - 1.15 + 2.0 + 1.05 + 0.95 - 3.3 + 2.7 + 3.6)
    assert math.isclose(JOINT_WEIGHTS[1, 0], 0.5 * 1.05 * 0.95 * 1.1) and math.isclose(JOINT_WEIGHTS[2, 0], -2 * 0.9 * 1.25)
