"""ResetGRU: flax's GRU equations with resets; values and gradients those of the whole-input projection up to
float32 rounding."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.networks import ResetGRU, _dense_arith, _gru_cell

T, B, D, H = 5, 3, 4, 6


def _inputs(seed=0):
    r = np.random.default_rng(seed)
    xs = jnp.asarray(r.normal(size=(T, B, D)).astype(np.float32))
    h0 = jnp.asarray(r.normal(size=(B, H)).astype(np.float32))
    resets = jnp.asarray(np.array([[0, 0, 1], [0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]], bool))
    return h0, xs, resets


def _params(seed=0):
    gru = ResetGRU(H)
    h0, xs, resets = _inputs(seed)
    p = gru.init(jax.random.PRNGKey(seed), h0, xs, resets)
    # non-zero biases, so that the bias path is exercised
    r = np.random.default_rng(seed + 1)
    p = jax.tree.map(lambda a: a, p)
    p["params"]["input_proj"]["bias"] = jnp.asarray(r.normal(size=(3 * H,)).astype(np.float32))
    p["params"]["recurrent_bias_n"] = jnp.asarray(r.normal(size=(H,)).astype(np.float32))
    return gru, p


def test_reset_gru_matches_flax_gru_cell_with_resets():
    """Every step equals flax's GRUCell on the same weights (r, z, n blocks), the state zeroed where a reset is."""
    gru, p = _params()
    h0, xs, resets = _inputs()
    _, hs = gru.apply(p, h0, xs, resets)
    w = p["params"]
    Wi, bi, Wh, bn = (w["input_proj"]["kernel"], w["input_proj"]["bias"], w["recurrent_kernel"],
                      w["recurrent_bias_n"])
    blocks = lambda a: [a[..., i * H:(i + 1) * H] for i in range(3)]  # noqa: E731
    (ir, iz, in_), (bir, biz, bin_), (hr, hz, hn) = blocks(Wi), blocks(bi), blocks(Wh)
    cell_params = {"params": {"ir": {"kernel": ir, "bias": bir}, "iz": {"kernel": iz, "bias": biz},
                              "in": {"kernel": in_, "bias": bin_}, "hr": {"kernel": hr}, "hz": {"kernel": hz},
                              "hn": {"kernel": hn, "bias": bn}}}
    cell = nn.GRUCell(features=H)
    h = h0
    for t in range(T):
        h = jnp.where(resets[t][:, None], 0.0, h)
        h, _ = cell.apply(cell_params, h, xs[t])
        np.testing.assert_allclose(hs[t], h, rtol=1e-5, atol=1e-6, err_msg=f"step {t}")


def _whole_projection(p, h0, xs, resets, precision):
    """The formulation before the input product moved into the loop: input_proj(xs) of all steps as one
    [T·B, D] product, then the scan reading its slices."""
    w = p["params"]
    gx = _dense_arith(xs, w["input_proj"]["kernel"], w["input_proj"]["bias"], precision)

    def step(h, inp):
        g, r0 = inp
        h = _gru_cell(jnp.where(r0[:, None], 0.0, h), g, w["recurrent_kernel"], w["recurrent_bias_n"], precision)
        return h, h

    return jax.lax.scan(step, h0, (gx, resets))


# The two layouts differ only in the order XLA's CPU product sums (it depends on the row count), with bf16
# operands too (float32 accumulation). ATOL is per unit of the array's largest entry: a gradient entry that
# is a sum over 64 steps with cancellation keeps the absolute rounding error of terms of that size.
RTOL, ATOL = 1e-5, 1e-6


@pytest.mark.parametrize("precision", ["float32", "bf16"])
@pytest.mark.parametrize("jit", [False, True])
def test_reset_gru_values_and_gradients_match_whole_input_projection(precision, jit):
    """Values and the gradients of every parameter, the inputs and the initial state agree with projecting the
    whole input first (the layout before ResetGRU took the input product into its loop) to float32 rounding,
    on T = 64 steps with resets, so that the step-by-step sum ∂W = Σ_t x_tᵀ∂y_t runs over many terms."""
    gru = ResetGRU(H, precision)
    _, p = _params()
    r = np.random.default_rng(2)
    xs = jnp.asarray(r.normal(size=(64, B, D)).astype(np.float32))
    resets = jnp.asarray(r.random((64, B)) < 0.1)
    h0 = _inputs()[0]
    weights = jnp.asarray(r.normal(size=(64, B, H)).astype(np.float32))

    def loss(apply):
        def f(p, h0, xs):
            last, hs = apply(p, h0, xs, resets)
            return jnp.sum(jnp.tanh(hs) * weights) + jnp.sum(last ** 2)
        return f

    ours = jax.value_and_grad(loss(gru.apply), argnums=(0, 1, 2))
    ref = jax.value_and_grad(loss(lambda *a: _whole_projection(*a, precision)), argnums=(0, 1, 2))
    if jit:
        ours, ref = jax.jit(ours), jax.jit(ref)
    got, want = ours(p, h0, xs), ref(p, h0, xs)
    got_leaves, want_leaves = jax.tree.leaves(got), jax.tree.leaves(want)
    assert len(got_leaves) == len(want_leaves) == 7  # loss; 4 parameters; h0; xs
    for g, w in zip(got_leaves, want_leaves):
        g, w = np.asarray(g), np.asarray(w)
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL * scale)
    assert float(jnp.abs(got[1][0]["params"]["input_proj"]["bias"]).sum()) > 0  # the bias gradient is not lost
