"""Seam 4 (update order): the simultaneous order with fake pieces, and the per-agent optimiser and learning-rate
schedule it relies on (:mod:`trustmarl.trainers.optim`)."""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from trustmarl.seams.update_orders import UPDATE_ORDERS, UpdatePieces, simultaneous
from trustmarl.trainers.optim import AgentOptimiser, linear_anneal

EPOCHS, M, N, A = 2, 3, 6, 4  # 2 epochs × 3 minibatches of a 6-sample batch, 4 agents


class Batch(NamedTuple):
    adv: jax.Array  # [N, A]
    obs: jax.Array  # [N, A, 2]
    mb_id: jax.Array  # [N] which minibatch the sample lands in


def _batch():
    return Batch(adv=jnp.arange(N * A, dtype=jnp.float32).reshape(N, A) - 5.0,
                 obs=jnp.zeros((N, A, 2)), mb_id=jnp.repeat(jnp.arange(M), N // M))


def _pieces(seen, measure=None):
    """Fake pieces. The learner is {"n": steps so far, "log": [2·EPOCHS·M] event codes}; an actor step on
    minibatch k writes 100 + k at position n, a critic step 200 + k. ``seen`` collects trace-time shapes."""

    def actor_step(learner, mb, agents, bounds=None):
        seen.append(("actor", bounds, mb.adv.shape, agents.shape, agents.dtype))
        n = learner["n"]
        learner = {"n": n + 1, "log": learner["log"].at[n].set(100 + mb.mb_id[0])}
        return learner, {"actor_n": n, "agents": agents}

    def critic_step(learner, mb):
        seen.append(("critic", mb.adv.shape))
        n = learner["n"]
        learner = {"n": n + 1, "log": learner["log"].at[n].set(200 + mb.mb_id[0])}
        return learner, {"critic_n": n}

    def minibatches(batch, key):
        # no shuffle, so the order is known: minibatch k holds samples 2k, 2k + 1
        return jax.tree.map(lambda x: x.reshape((M, N // M) + x.shape[1:]), batch)

    if measure is None:
        def measure(learner, batch, metrics):
            return None, metrics

    return UpdatePieces(actor_step, critic_step, minibatches, measure, EPOCHS, A)


def _learner():
    return {"n": jnp.int32(0), "log": jnp.zeros((2 * EPOCHS * M,), jnp.int32)}


@pytest.mark.parametrize("jit", [False, True])
def test_simultaneous_order(jit):
    """2 epochs × 3 minibatches = 6 actor and 6 critic steps, actor then critic on each minibatch:
    log = [100, 200, 101, 201, 102, 202] twice; the actor sees counter 0, 2, 4 | 6, 8, 10 and the critic
    1, 3, 5 | 7, 9, 11; metrics stacked [EPOCHS, M, ...]; agents = [T, T, T, T] and no clip-bound override
    (the minibatch carries no factor: the simultaneous order's factor is 1)."""
    seen = []
    update = simultaneous(_pieces(seen))
    update = jax.jit(update) if jit else update
    learner, (metrics, tr) = update(_learner(), _batch(), jax.random.PRNGKey(0))

    assert int(learner["n"]) == 2 * EPOCHS * M == 12
    np.testing.assert_array_equal(learner["log"], [100, 200, 101, 201, 102, 202] * 2)
    assert tr is None
    assert set(metrics) == {"actor_n", "agents", "critic_n"}
    np.testing.assert_array_equal(metrics["actor_n"], [[0, 2, 4], [6, 8, 10]])
    np.testing.assert_array_equal(metrics["critic_n"], [[1, 3, 5], [7, 9, 11]])
    assert metrics["agents"].shape == (EPOCHS, M, A) and metrics["agents"].dtype == jnp.bool_
    assert bool(jnp.all(metrics["agents"]))
    # trace-time: the minibatch has [N/M, A] samples; agents is [A] bool; bounds are the configured ones
    actor_calls = [s for s in seen if s[0] == "actor"]
    assert actor_calls and all(s[1] is None and s[2] == (N // M, A) and s[3] == (A,) and s[4] == jnp.bool_
                               for s in actor_calls)
    assert all(s[1] == (N // M, A) for s in seen if s[0] == "critic")


@pytest.mark.parametrize("jit", [False, True])
def test_simultaneous_measure_sees_epoch_end(jit):
    """measure runs once per epoch after the epoch's minibatches, with the metrics stacked on [M]: it
    returns the counter (6 after epoch 0, 12 after epoch 1) and can rewrite the metrics (here: their sum
    over M of actor_n, 0+2+4 = 6 and 6+8+10 = 24)."""
    def measure(learner, batch, metrics):
        assert metrics["actor_n"].shape == (M,)
        return learner["n"], {"actor_n_sum": metrics["actor_n"].sum()}

    update = simultaneous(_pieces([], measure))
    update = jax.jit(update) if jit else update
    _, (metrics, tr) = update(_learner(), _batch(), jax.random.PRNGKey(1))
    np.testing.assert_array_equal(tr, [6, 12])
    np.testing.assert_array_equal(metrics["actor_n_sum"], [6, 24])


def test_update_order_registry():
    assert UPDATE_ORDERS["simultaneous"] is simultaneous


# ---------------------------------------------------------------------------------------------------------
# trustmarl.trainers.optim
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("jit", [False, True])
def test_linear_anneal(jit):
    """lr · (1 − u/U), lr = 1, U = 4: u = 0..3 → 1, 0.75, 0.5, 0.25. Not annealed: 3e-4 whatever u."""
    f = linear_anneal(1.0, 4, True)
    f = jax.jit(f) if jit else f
    np.testing.assert_allclose([f(jnp.int32(u)) for u in range(4)], [1.0, 0.75, 0.5, 0.25], rtol=1e-7)
    g = linear_anneal(3e-4, 4, False)
    g = jax.jit(g) if jit else g
    np.testing.assert_allclose([g(jnp.int32(u)) for u in (0, 2, 3, 100)], [3e-4] * 4, rtol=1e-7)


def _step_fn(opt, jit):
    f = opt.step
    return jax.jit(f) if jit else f


def _stacked_params():
    # 3 agents: w [3, 2], b [3]
    return {"w": jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), "b": jnp.array([0.5, -0.5, 1.5])}


@pytest.mark.parametrize("jit", [False, True])
def test_per_agent_optimiser_moves_only_selected_agents(jit):
    """Tolerances: float32 Adam (bias correction 1 − 0.999^t loses ~3 digits) lands within ~2e-6 of the
    hand value; the alternatives these tests exclude differ by ≥ 0.02.

    Adam's first step is lr · m̂/(√v̂ + eps) = lr · g/(|g| + eps) ≈ lr · sign(g) (eps = 1e-8, |g| ≥ 0.1).
    lr = 0.1, agents = [F, T, F]: agent 1 moves w [3, 4] − 0.1·sign([0.3, −0.4]) = [2.9, 4.1],
    b −0.5 − 0.1·sign(0.2) = −0.6, and its Adam count becomes 1; agents 0 and 2 keep their parameters
    and optimiser state bit-for-bit (count 0, moments 0) although their gradients are nonzero."""
    opt = AgentOptimiser.make(max_grad_norm=10.0, adam_eps=1e-8, lr_fn=linear_anneal(0.1, 10, False),
                              per_agent=True)
    params = _stacked_params()
    state = opt.init(params)
    grads = {"w": jnp.array([[1.0, 1.0], [0.3, -0.4], [-2.0, 0.5]]), "b": jnp.array([1.0, 0.2, -1.0])}
    step = _step_fn(opt, jit)
    new_p, new_s = step(params, state, grads, jnp.int32(0), jnp.array([False, True, False]))

    np.testing.assert_allclose(new_p["w"][1], [2.9, 4.1], atol=1e-5)
    np.testing.assert_allclose(new_p["b"][1], -0.6, atol=1e-5)
    for k in ("w", "b"):
        np.testing.assert_array_equal(new_p[k][jnp.array([0, 2])], params[k][jnp.array([0, 2])])
    adam = new_s[1]  # chain(clip, scale_by_adam): the adam state
    np.testing.assert_array_equal(adam.count, [0, 1, 0])

    # second step, from a state where every agent has moments: select agent 1 again, the others stay put
    p1, s1 = step(params, state, grads, jnp.int32(0), jnp.array([True, True, True]))
    p2, s2 = step(p1, s1, grads, jnp.int32(0), jnp.array([False, True, False]))
    np.testing.assert_array_equal(s2[1].count, [1, 2, 1])
    for i in (0, 2):
        for before, after in zip(jax.tree.leaves((p1, s1)), jax.tree.leaves((p2, s2))):
            np.testing.assert_array_equal(after[i], before[i])
    for before, after in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        assert not np.array_equal(after[1], before[1])
    for before, after in zip(jax.tree.leaves((s1[1].mu, s1[1].nu)), jax.tree.leaves((s2[1].mu, s2[1].nu))):
        assert not np.array_equal(after[1], before[1])


@pytest.mark.parametrize("jit", [False, True])
def test_per_agent_gradient_clip(jit):
    """max_grad_norm = 1, 2 agents, one parameter w [2, 2] each, lr = 0.1, eps = 1e-8, two steps.
    Agent 0: g = [6, 8] (norm 10) then [0, 0]; agent 1: g = [0.06, −0.08] (norm 0.1) both steps.

    Per-agent clip: agent 1 is never clipped and sees the same g twice, so m̂ = g, v̂ = g² at both steps and
    each step moves lr·sign(g): w_1 = [1, 1] − 2·0.1·[1, −1] = [0.8, 1.2].
    (A global clip over both agents would scale agent 1's first gradient by 1/10 and not its second one:
    m̂_2 = (0.1·0.9·0.1 g + 0.1 g)/0.19 = 0.5737 g, v̂_2 = (0.001·0.999·0.01 + 0.001)g²/0.001999 = 0.5052 g²,
    second step 0.1·0.5737/0.7108 = 0.0807 instead of 0.1.)  Agent 0's first step is lr·sign([0.6, 0.8]):
    w_0 after step 1 = [0.9, 0.9].  Agent 1 must also equal agent 1 optimised alone (a 1-agent stack)."""
    opt = AgentOptimiser.make(max_grad_norm=1.0, adam_eps=1e-8, lr_fn=linear_anneal(0.1, 10, False),
                              per_agent=True)
    step = _step_fn(opt, jit)
    both = jnp.array([True, True])
    params = {"w": jnp.ones((2, 2))}
    state = opt.init(params)
    g1 = {"w": jnp.array([[6.0, 8.0], [0.06, -0.08]])}
    g2 = {"w": jnp.array([[0.0, 0.0], [0.06, -0.08]])}
    p, s = step(params, state, g1, jnp.int32(0), both)
    np.testing.assert_allclose(p["w"][0], [0.9, 0.9], atol=1e-5)
    p, s = step(p, s, g2, jnp.int32(0), both)
    np.testing.assert_allclose(p["w"][1], [0.8, 1.2], atol=1e-5)

    alone_p = {"w": jnp.ones((1, 2))}
    alone_s = opt.init(alone_p)
    one = jnp.array([True])
    alone_p, alone_s = step(alone_p, alone_s, {"w": g1["w"][1:]}, jnp.int32(0), one)
    alone_p, alone_s = step(alone_p, alone_s, {"w": g2["w"][1:]}, jnp.int32(0), one)
    np.testing.assert_allclose(p["w"][1], alone_p["w"][0], rtol=1e-7)


@pytest.mark.parametrize("jit", [False, True])
def test_shared_optimiser_equals_optax_chain(jit):
    """per_agent=False with lr_fn = linear_anneal(lr, U) driven by update_count = count // S equals
    optax.chain(clip_by_global_norm(c), adam(lambda count: lr·(1 − (count // S)/U))), bit for bit, over 6
    optimiser steps with S = 3 steps per update and U = 4 updates (learning rates lr, lr, lr, 0.75lr ×3)."""
    c, lr, eps, S, U = 0.5, 3e-3, 1e-5, 3, 4
    opt = AgentOptimiser.make(max_grad_norm=c, adam_eps=eps, lr_fn=linear_anneal(lr, U, True), per_agent=False)
    ref = optax.chain(optax.clip_by_global_norm(c),
                      optax.adam(lambda count: lr * (1.0 - (count // S) / U), eps=eps))
    params = {"w": jnp.array([[0.3, -1.2], [2.0, 0.7]]), "b": jnp.array([0.1, -0.2])}
    step = _step_fn(opt, jit)

    def ref_step(p, s, g):
        upd, s = ref.update(g, s, p)
        return optax.apply_updates(p, upd), s

    ref_step = jax.jit(ref_step) if jit else ref_step
    p_a, s_a = params, opt.init(params)
    p_b, s_b = params, ref.init(params)
    key = jax.random.PRNGKey(3)
    for count in range(6):
        key, k = jax.random.split(key)
        # gradients of norm ~1-3 so the clip at 0.5 binds
        g = jax.tree.map(lambda x: 2.0 * jax.random.normal(jax.random.fold_in(k, x.size), x.shape), params)
        p_a, s_a = step(p_a, s_a, g, jnp.int32(count // S), jnp.array([True, True, True]))
        p_b, s_b = ref_step(p_b, s_b, g)
        for a, b in zip(jax.tree.leaves(p_a), jax.tree.leaves(p_b)):
            np.testing.assert_array_equal(a, b)
    # and the parameters did move
    assert not np.array_equal(p_a["w"], params["w"])
