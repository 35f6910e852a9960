"""The fused LayerNorm→Dense op against flax's own LayerNorm and Dense, values and every gradient."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.networks import LN_EPS, LayerNormDense, layer_norm_dense


def _reference(x, scale, bias, kernel, dense_bias):
    y = nn.LayerNorm(epsilon=LN_EPS).apply({"params": {"scale": scale, "bias": bias}}, x)
    return nn.Dense(kernel.shape[1]).apply({"params": {"kernel": kernel, "bias": dense_bias}}, y)


def _args(shape=(3, 7, 11), k=5, seed=0):
    r = np.random.default_rng(seed)
    x = r.normal(2.0, 3.0, shape).astype(np.float32)  # off-centre, so the mean matters
    return [jnp.asarray(a) for a in (x, r.normal(1, .3, shape[-1:]), r.normal(0, .3, shape[-1:]),
                                     r.normal(0, .5, (shape[-1], k)), r.normal(0, .5, (k,)))]


@pytest.mark.parametrize("jit", [False, True])
def test_layer_norm_dense_matches_flax(jit):
    args = [a.astype(jnp.float32) for a in _args()]
    f = jax.jit(layer_norm_dense) if jit else layer_norm_dense
    np.testing.assert_allclose(f(*args), _reference(*args), rtol=1e-4, atol=1e-4)

    # a loss that weights outputs unevenly, so every gradient term is exercised
    w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 7, 5)).astype(np.float32))
    loss = lambda fn: (lambda *a: jnp.sum(jnp.tanh(fn(*a)) * w))  # noqa: E731
    grads = jax.grad(loss(layer_norm_dense), argnums=tuple(range(5)))
    if jit:
        grads = jax.jit(grads)
    got = grads(*args)
    want = jax.grad(loss(_reference), argnums=tuple(range(5)))(*args)
    for name, g, r in zip(("x", "scale", "bias", "kernel", "dense_bias"), got, want):
        np.testing.assert_allclose(g, r, rtol=2e-3, atol=2e-4, err_msg=name)


def test_layer_norm_dense_hand_computed():
    # x = [1, 3]: mean 2, variance 1, so x̂ = [-1, 1] (up to eps); scale [2, 1], bias [0, 1] → y = [-2, 2];
    # kernel [[1], [1]], dense bias 0.5 → -2 + 2 + 0.5 = 0.5.
    x = jnp.array([[1.0, 3.0]])
    out = layer_norm_dense(x, jnp.array([2.0, 1.0]), jnp.array([0.0, 1.0]), jnp.ones((2, 1)), jnp.array([0.5]))
    np.testing.assert_allclose(out, [[0.5]], atol=1e-5)
    # ∂out/∂kernel = y = [-2, 2]; ∂out/∂scale = kernel ⊙ x̂ = [-1, 1]; ∂out/∂bias = kernel = [1, 1]
    g = jax.grad(lambda s, b, k: layer_norm_dense(x, s, b, k, jnp.array([0.5]))[0, 0], argnums=(0, 1, 2))(
        jnp.array([2.0, 1.0]), jnp.array([0.0, 1.0]), jnp.ones((2, 1)))
    np.testing.assert_allclose(g[0], [-1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(g[1], [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(g[2][:, 0], [-2.0, 2.0], atol=1e-5)


def test_layer_norm_dense_module_params():
    m = LayerNormDense(4)
    p = m.init(jax.random.PRNGKey(0), jnp.zeros((2, 6)))["params"]
    assert {k: v.shape for k, v in p.items()} == {"scale": (6,), "bias": (6,), "kernel": (6, 4),
                                                   "dense_bias": (4,)}
