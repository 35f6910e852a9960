"""Seam 3 (surrogate and clip): the independent and joint PPO objectives, values and gradients by hand."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import trustmarl.algos  # noqa: F401  (registers OBJECTIVES["joint"])
from trustmarl.algos.jrppo import joint_objective
from trustmarl.seams.surrogates import OBJECTIVES, ObjectiveInputs, clipped_flags, independent_objective

LOW, HIGH = 0.8, 1.2  # ε = 0.2

# ---------------------------------------------------------------------------------------------------------
# Independent objective, [T=3, A=2], logp_old = 0 so r = exp(logp).
#
#   entry  r    A   rA     clip(r)A     min      clipped   active
#   (0,0)  1.5  +2  3.0    1.2·2=2.4    2.4      yes (A>0, r>1.2)
#   (0,1)  1.1  +1  1.1    1.1          1.1      no
#   (1,0)  0.5  −1  −0.5   0.8·−1=−0.8  −0.8     yes (A<0, r<0.8)
#   (1,1)  1.5  −2  −3.0   1.2·−2=−2.4  −3.0     no  (A<0, r>1.2: the unclipped branch is the min)
#   (2,0)  0.5  +2  1.0    0.8·2=1.6    1.0      no  (A>0, r<0.8: unclipped branch)
#   (2,1)  2.0  +3  6.0    1.2·3=3.6    3.6      yes               inactive → excluded from the loss
#
# Factor 1: L = −(2.4 + 1.1 − 0.8 − 3.0 + 1.0)/5 = −0.7/5 = −0.14
# Factor [2, 0.5] (per agent): L = −(2·(2.4 − 0.8 + 1.0) + 0.5·(1.1 − 3.0))/5 = −(5.2 − 0.95)/5 = −0.85
#
# Gradient: on the unclipped branch d(rA)/dlogp = A·r (r = exp(logp − logp_old)), so
#   dL/dlogp = −f·A·r/5 there, and 0 where the clip binds (clip(r)·A is constant) or the entry is inactive.
#   factor 1:       (0,1): −1.1/5 = −0.22;  (1,1): −(−2)(1.5)/5 = +0.6;  (2,0): −2·0.5/5 = −0.2
#   factor [2,0.5]: (0,1): −0.5·1.1/5 = −0.11;  (1,1): 0.5·3/5 = +0.3;  (2,0): −2·2·0.5/5 = −0.4
# ---------------------------------------------------------------------------------------------------------
R = np.array([[1.5, 1.1], [0.5, 1.5], [0.5, 2.0]], np.float32)
ADV = jnp.array([[2.0, 1.0], [-1.0, -2.0], [2.0, 3.0]])
MASK = jnp.array([[True, True], [True, True], [True, False]])
LOGP = jnp.log(jnp.asarray(R))
LOGP_OLD = jnp.zeros((3, 2))
CLIPPED = [[True, False], [True, False], [False, True]]


def _inputs(logp, factor, adv=ADV, adv_joint=None, mask=MASK, logp_old=LOGP_OLD):
    if adv_joint is None:
        adv_joint = jnp.zeros(adv.shape[:-1])
    return ObjectiveInputs(logp=logp, logp_old=logp_old, adv=adv, adv_joint=adv_joint, mask=mask,
                           factor=factor, low=jnp.float32(LOW), high=jnp.float32(HIGH))


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("factor, loss, grad", [
    ([1.0, 1.0], -0.14, [[0.0, -0.22], [0.0, 0.6], [-0.2, 0.0]]),
    ([2.0, 0.5], -0.85, [[0.0, -0.11], [0.0, 0.3], [-0.4, 0.0]]),
])
def test_independent_objective(jit, factor, loss, grad):
    f = jnp.broadcast_to(jnp.array(factor), (3, 2))

    def fn(logp):
        return independent_objective(_inputs(logp, f))

    fn_ = jax.jit(fn) if jit else fn
    out, clipped = fn_(LOGP)
    np.testing.assert_allclose(out, loss, rtol=1e-5)
    # raw flags follow the formula on every entry; the inactive (2,1) is flagged too (consumers mask it)
    np.testing.assert_array_equal(clipped, CLIPPED)
    g = jax.grad(lambda lp: fn(lp)[0])
    g = jax.jit(g) if jit else g
    np.testing.assert_allclose(g(LOGP), grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("jit", [False, True])
def test_independent_objective_inactive_entry_excluded(jit):
    """Changing the inactive entry's logp and advantage leaves the loss at −0.14 (still divided by 5)."""
    logp = LOGP.at[2, 1].set(math.log(5.0))
    adv = ADV.at[2, 1].set(-7.0)
    fn = lambda lp, a: independent_objective(_inputs(lp, jnp.ones((3, 2)), adv=a))[0]  # noqa: E731
    fn = jax.jit(fn) if jit else fn
    np.testing.assert_allclose(fn(logp, adv), -0.14, rtol=1e-5)


def test_registry_independent():
    assert OBJECTIVES["independent"] is independent_objective


# ---------------------------------------------------------------------------------------------------------
# Joint objective (JR-PPO), [T=4, A=3]; logp_old = 0 so r_i = exp(logp_i), r = Π_{i active} r_i.
#
#   step  r_i                 mask       r_joint          Â     min(rÂ, clip(r)Â)            clipped
#   0     [1.5, 1.2, 1.0]     [T, T, T]  1.8              +1    min(1.8, 1.2) = 1.2           yes
#   1     [1.1, 0.5, 3.0]     [T, T, F]  1.1·0.5 = 0.55   +2    min(1.1, 0.8·2=1.6) = 1.1     no
#   2     [2.0, 2.0, 2.0]     [F, F, F]  1 (nobody)       +5    (step excluded)               no (r=1)
#   3     [1.0, 1.25, 1.2]    [T, T, T]  1.5              −1    min(−1.5, −1.2) = −1.5        no
#
# 3 steps have an active agent: L = −(1.2 + 1.1 − 1.5)/3 = −0.8/3.
# dL/dlogp_i = −Â·r_joint/3 for every active agent of an unclipped step (d r_joint/d logp_i = r_joint):
#   step 0: clip binds → 0 for all three agents
#   step 1: −2·0.55/3 = −1.1/3 for agents 0, 1; agent 2 inactive → 0
#   step 2: all inactive → 0;   step 3: −(−1)·1.5/3 = +0.5 for each agent
# ---------------------------------------------------------------------------------------------------------
JR = np.array([[1.5, 1.2, 1.0], [1.1, 0.5, 3.0], [2.0, 2.0, 2.0], [1.0, 1.25, 1.2]], np.float32)
JMASK = jnp.array([[True, True, True], [True, True, False], [False, False, False], [True, True, True]])
JADV = jnp.array([1.0, 2.0, 5.0, -1.0])
JLOGP = jnp.log(jnp.asarray(JR))
# the per-agent advantage is not read by the joint objective: deliberately nonsense values
JADV_AGENT = jnp.full((4, 3), 100.0)


def _joint(logp, factor=None):
    factor = jnp.ones((4, 3)) if factor is None else factor
    return joint_objective(_inputs(logp, factor, adv=JADV_AGENT, adv_joint=JADV, mask=JMASK,
                                   logp_old=jnp.zeros((4, 3))))


@pytest.mark.parametrize("jit", [False, True])
def test_joint_objective(jit):
    fn = jax.jit(_joint) if jit else _joint
    loss, clipped = fn(JLOGP)
    np.testing.assert_allclose(loss, -0.8 / 3, rtol=1e-5)
    assert clipped.shape == (4, 3)
    np.testing.assert_array_equal(clipped, [[True] * 3, [False] * 3, [False] * 3, [False] * 3])
    g = jax.grad(lambda lp: _joint(lp)[0])
    g = jax.jit(g) if jit else g
    np.testing.assert_allclose(g(JLOGP), [[0.0, 0.0, 0.0], [-1.1 / 3, -1.1 / 3, 0.0], [0.0, 0.0, 0.0],
                                          [0.5, 0.5, 0.5]], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("jit", [False, True])
def test_joint_objective_negative_advantage_binds(jit):
    """One step, r_i = [0.5, 1.0, 1.2] → r = 0.6 < 0.8, Â = −1: min(−0.6, 0.8·−1 = −0.8) = −0.8, clipped.
    L = +0.8, every agent's gradient 0, flags [T, T, T]."""
    logp = jnp.log(jnp.array([[0.5, 1.0, 1.2]]))
    x = _inputs(logp, jnp.ones((1, 3)), adv=jnp.zeros((1, 3)), adv_joint=jnp.array([-1.0]),
                mask=jnp.ones((1, 3), bool), logp_old=jnp.zeros((1, 3)))
    fn = lambda lp: joint_objective(x._replace(logp=lp))  # noqa: E731
    fn = jax.jit(fn) if jit else fn
    loss, clipped = fn(logp)
    np.testing.assert_allclose(loss, 0.8, rtol=1e-5)
    np.testing.assert_array_equal(clipped, [[True, True, True]])
    g = jax.grad(lambda lp: joint_objective(x._replace(logp=lp))[0])
    g = jax.jit(g) if jit else g
    np.testing.assert_array_equal(g(logp), [[0.0, 0.0, 0.0]])


@pytest.mark.parametrize("jit", [False, True])
def test_joint_objective_inactive_agent_ignored(jit):
    """Agent 2's logp at step 1 (inactive) is changed from log 3 to log 100: the joint ratio, the loss and
    every gradient are unchanged."""
    fn = lambda lp: _joint(lp)[0]  # noqa: E731
    fn = jax.jit(fn) if jit else fn
    np.testing.assert_allclose(fn(JLOGP.at[1, 2].set(math.log(100.0))), -0.8 / 3, rtol=1e-5)


@pytest.mark.parametrize("jit", [False, True])
def test_joint_objective_factor_from_first_agent(jit):
    """The factor is read from agent 0 only: factor[:, 0] = 2 doubles each step's term, L = −1.6/3;
    the other agents' factors (here 7) are ignored."""
    factor = jnp.array([[2.0, 7.0, 7.0]] * 4)
    fn = lambda lp: _joint(lp, factor)[0]  # noqa: E731
    fn = jax.jit(fn) if jit else fn
    np.testing.assert_allclose(fn(JLOGP), -1.6 / 3, rtol=1e-5)


def test_joint_registered():
    assert OBJECTIVES["joint"] is joint_objective


@pytest.mark.parametrize("jit", [False, True])
def test_clipped_flags(jit):
    """ε = 0.2. Flag iff (A > 0 and r > 1.2) or (A < 0 and r < 0.8); the bounds themselves and A = 0 don't
    bind.  r:    1.3  1.3  0.7  0.7  1.0  1.2  0.8  5.0  0.1
               A:  +1   −1   +1   −1   +1   +1   −1    0    0
            flag:  T    F    F    T    F    F    F    F    F"""
    r = jnp.array([1.3, 1.3, 0.7, 0.7, 1.0, 1.2, 0.8, 5.0, 0.1])
    a = jnp.array([1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0, 0.0, 0.0])
    fn = lambda r, a: clipped_flags(r, a, jnp.float32(LOW), jnp.float32(HIGH))  # noqa: E731
    fn = jax.jit(fn) if jit else fn
    np.testing.assert_array_equal(fn(r, a), [True, False, False, True, False, False, False, False, False])
