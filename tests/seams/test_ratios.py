"""Seam 2 (probability ratios): independent and joint log-ratios and the preceding agents' factor."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.seams.ratios import RATIOS, preceding_factor

LOGP_NEW = jnp.array([[-0.5, -1.0, -2.0], [-1.0, -1.0, -1.0]])
LOGP_OLD = jnp.array([[-1.0, -0.75, -3.0], [-2.0, -0.5, -1.5]])


@pytest.mark.parametrize("jit", [False, True])
def test_independent_log_ratio(jit):
    """log r_i = log π̃_i − log π_i: row 0 → [0.5, −0.25, 1.0], row 1 → [1.0, −0.5, 0.5]."""
    fn = RATIOS["independent"]
    fn = jax.jit(fn) if jit else fn
    np.testing.assert_allclose(fn(LOGP_NEW, LOGP_OLD), [[0.5, -0.25, 1.0], [1.0, -0.5, 0.5]], rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_joint_log_ratio_sums_active_only(jit):
    """Row 0, mask [T, F, T]: 0.5 + 1.0 = 1.5 (agent 1's −0.25 counts as ratio 1, log 0).
    Row 1, mask [T, T, T]: 1.0 − 0.5 + 0.5 = 1.0.  Joint ratio = exp(·): e^1.5, e^1."""
    mask = jnp.array([[True, False, True], [True, True, True]])
    fn = RATIOS["joint"]
    fn = jax.jit(fn) if jit else fn
    out = fn(LOGP_NEW, LOGP_OLD, mask)
    np.testing.assert_allclose(out, [1.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(jnp.exp(out), [math.exp(1.5), math.e], rtol=1e-6)


LOG_R = jnp.log(jnp.array([1.2, 0.5, 2.0]))


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("updated, mask, expected", [
    # agents 0 and 2 precede: 1.2 · 2.0 = 2.4 (agent 1's 0.5 not yet updated)
    ([True, False, True], [True, True, True], 2.4),
    # agent 2 inactive: its ratio counts as 1 → 1.2
    ([True, False, True], [True, True, False], 1.2),
    # nobody updated yet (first agent of a sequential order, or the simultaneous order) → 1
    ([False, False, False], [True, True, True], 1.0),
    # everybody: 1.2 · 0.5 · 2.0 = 1.2
    ([True, True, True], [True, True, True], 1.2),
])
def test_preceding_factor(jit, updated, mask, expected):
    fn = jax.jit(preceding_factor) if jit else preceding_factor
    out = fn(LOG_R, jnp.array(updated), jnp.array(mask))
    assert out.shape == ()
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_preceding_factor_batched(jit):
    """Leading batch axis: per-sample products. Row 0 = 1.2·2.0 = 2.4; row 1 (ratios [3, 4, 0.25],
    mask [T, T, F]) with updated [T, F, T] → 3 (agent 2 inactive, agent 1 not updated)."""
    log_r = jnp.log(jnp.array([[1.2, 0.5, 2.0], [3.0, 4.0, 0.25]]))
    mask = jnp.array([[True, True, True], [True, True, False]])
    fn = jax.jit(preceding_factor) if jit else preceding_factor
    np.testing.assert_allclose(fn(log_r, jnp.array([True, False, True]), mask), [2.4, 3.0], rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_preceding_factor_has_no_gradient(jit):
    """Without the stop_gradient d/dlog r_0 of r_0·r_2 would be 2.4; under it, every entry is 0."""
    g = jax.grad(lambda lr: preceding_factor(lr, jnp.array([True, False, True]), jnp.ones(3, bool)))
    g = jax.jit(g) if jit else g
    np.testing.assert_array_equal(g(LOG_R), [0.0, 0.0, 0.0])
