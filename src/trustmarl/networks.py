"""Actor and critic networks, feed-forward or GRU, shared across agents or one per agent.

Every network is applied to sequences in the trainer's layout: inputs ``[T, B, D]`` with episode-start
flags ``[T, B]`` and a carried hidden state ``[B, H]``; feed-forward networks carry a dummy ``[B, 1]``
hidden so that both kinds share one code path. Agent handling lives in :func:`apply_agents`:
shared parameters fold agents into the batch (``B = E·A``); per-agent parameters are stacked on a
leading axis and the module is ``vmap``-ed over agents (HAPPO's default, no sharing).

Initialisation follows the PPO/MAPPO convention: orthogonal, gain √2 in hidden layers (the layer after the
GRU: ``post_gru_gain``, √2 unless set), 0.01 for the policy head (near-uniform initial policy) and 1 for the value head. The orthogonal matrices come from
:func:`orthogonal`, a QR written in plain JAX operations, never LAPACK: see its docstring for why.

``precision`` (``Config.precision``): ``"float32"`` (default) computes everything in float32; ``"bf16"`` runs
every matrix product of the networks — dense layers, the GRU's input and recurrent products, the fused
LayerNorm→Dense in both passes — on bfloat16 operands with float32 accumulation and float32 results
(:func:`matmul`). Parameters, their gradients and the optimiser state stay float32; only the operands of the
products are rounded (8 significant bits), which is what makes them cheaper on CPUs with bfloat16 dot
instructions (AVX-512 BF16, AMX) and on accelerators.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.initializers import constant

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu}
MASKED_LOGIT = -1e9  # finite, so that masked entries give exp()=0 without NaN gradients


LN_EPS = 1e-6
PRECISIONS = ("float32", "bf16")


def matmul(a: jax.Array, b: jax.Array, precision: str = "float32") -> jax.Array:
    """``a @ b`` for ``a`` [..., K], ``b`` [K, N] (or [K]); with ``precision="bf16"`` :func:`bf16_matmul`."""
    if precision == "float32":
        return a @ b
    if b.ndim == 1:
        return bf16_matmul(a, b[:, None])[..., 0]
    return bf16_matmul(a, b)


def _mm16(a, b):
    """bfloat16 operands, float32 accumulation and result."""
    return jnp.matmul(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), preferred_element_type=jnp.float32)


@jax.custom_vjp
def bf16_matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a @ b`` (``a`` [..., K], ``b`` [K, N]) on bfloat16 operands with float32 accumulation and result, in
    both passes: the backward products ``ḡ bᵀ`` and ``aᵀ ḡ`` also take bfloat16 operands (``ḡ`` the
    cotangent rounded to bfloat16). Autodiff of a cast-then-multiply would instead multiply the float32
    cotangent by the bfloat16 operand, a mixed product XLA's CPU runs in float32, which took away the
    gain (a 20480×128 by 128×384 product: 28 ms in float32, 12.6 ms on bfloat16 operands, here)."""
    return _mm16(a, b)


def _bf16_fwd(a, b):
    # empty arrays carry the primal dtypes (residuals must be arrays)
    return _mm16(a, b), (a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), jnp.zeros((0,), a.dtype),
                         jnp.zeros((0,), b.dtype))


def _bf16_bwd(res, g):
    a16, b16, a_tag, b_tag = res
    a_dtype, b_dtype = a_tag.dtype, b_tag.dtype
    g16 = g.astype(jnp.bfloat16)
    da = _mm16(g16, b16.T)
    db = _mm16(a16.reshape(-1, a16.shape[-1]).T, g16.reshape(-1, g16.shape[-1]))
    return da.astype(a_dtype), db.astype(b_dtype)


bf16_matmul.defvjp(_bf16_fwd, _bf16_bwd)


def _bf16_dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """flax ``Dense``'s product (``lhs`` [..., K] by ``rhs`` [K, N]) by :func:`bf16_matmul`; the bias is added in
    float32."""
    (lc, rc), (lb, rb) = dimension_numbers
    if tuple(lc) != (lhs.ndim - 1,) or tuple(rc) != (0,) or lb or rb or rhs.ndim != 2:
        raise ValueError(f"bf16 products support Dense's [..., K] x [K, N] only, got {dimension_numbers}")
    return bf16_matmul(lhs, rhs)


def dense(features: int, precision: str = "float32", **kw) -> nn.Dense:
    """``nn.Dense`` whose product follows ``precision`` (float32: flax's own, unchanged)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    return nn.Dense(features, dot_general=_bf16_dot_general if precision == "bf16" else None, **kw)


def householder_qr(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Thin QR of ``a`` [m, n], m ≥ n, by Householder reflections in plain JAX: returns ``(Q [m, n], diag R [n])``.

    Column k: ``x = R[k:, k]``, ``v = x − α e_k`` with ``α = −sign(x_k)‖x‖`` (no cancellation),
    ``R ← R − β v (vᵀ R)``, ``β = 2/vᵀv``; then ``Q = H_0 ⋯ H_{n−1} [I_n; 0]`` is applied backwards (Golub &
    Van Loan, Algorithms 5.1.1 and 5.2.1). Only elementwise ops and matrix-vector products: under ``vmap``
    it stays ordinary batched XLA arithmetic, whereas ``jnp.linalg.qr`` is a LAPACK custom call that XLA's
    CPU runtime splits over its own thread pool and which, when two such batched calls run at once, can
    take every pool thread and wait on itself forever (docs/known-issues.md).
    """
    m, n = a.shape
    rows = jnp.arange(m)

    def reflect(k, carry):
        r, vs, betas = carry
        x = jnp.where(rows >= k, r[:, k], 0.0)
        xk = x[k]
        alpha = -jnp.where(xk >= 0, 1.0, -1.0) * jnp.sqrt(jnp.sum(x * x))
        v = x.at[k].add(-alpha)
        vv = jnp.sum(v * v)
        beta = jnp.where(vv > 0, 2.0 / jnp.where(vv > 0, vv, 1.0), 0.0)
        r = r - beta * jnp.outer(v, v @ r)
        return r, vs.at[k].set(v), betas.at[k].set(beta)

    init = (a, jnp.zeros((n, m), a.dtype), jnp.zeros((n,), a.dtype))
    r, vs, betas = jax.lax.fori_loop(0, n, reflect, init)

    def apply(i, q):
        k = n - 1 - i
        v = vs[k]
        return q - betas[k] * jnp.outer(v, v @ q)

    q = jax.lax.fori_loop(0, n, apply, jnp.eye(m, n, dtype=a.dtype))
    return q, jnp.diagonal(r)


def orthogonal(scale: float = 1.0, column_axis: int = -1):
    """Orthogonal initialiser (Saxe et al. 2014) with the same draw as ``jax.nn.initializers.orthogonal``.

    ``Z ~ N(0, 1)`` of shape ``[max(r, c), min(r, c)]``, ``Z = QR``, ``W = scale · Q · diag(sign(diag R))``
    (transposed when ``r < c``), which is Haar-distributed (Mezzadri 2007). The sign-fixed ``Q`` of a
    full-rank ``Z`` is unique, so this equals JAX's initialiser for the same key up to float rounding
    (tested to 1e-5); only the QR differs: :func:`householder_qr` instead of LAPACK, so that initialising
    many seeds or agents under ``vmap`` cannot deadlock XLA's CPU thread pool.
    """
    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError(f"orthogonal initialiser needs a shape of rank >= 2, got {shape}")
        n_cols = shape[column_axis]
        n_rows = int(np.prod(shape)) // n_cols
        z = jax.random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), dtype)
        q, d = householder_qr(z)
        q = q * jnp.where(d >= 0, 1.0, -1.0).astype(dtype)[None, :]
        if n_rows < n_cols:
            q = q.T
        q = jnp.reshape(q, tuple(np.delete(shape, column_axis)) + (n_cols,))
        return jnp.asarray(scale, dtype) * jnp.moveaxis(q, -1, column_axis)

    return init


def _moments(x):
    """Row mean and 1/sqrt(var + eps) of ``x`` [..., D], each [..., 1] (one pass: E[x], E[x²])."""
    mu = x.mean(-1, keepdims=True)
    var = jnp.maximum((x * x).mean(-1, keepdims=True) - mu * mu, 0.0)
    return mu, jax.lax.rsqrt(var + LN_EPS)


def layer_norm_dense(x, scale, bias, kernel, dense_bias, precision: str = "float32"):
    """``LayerNorm(x; scale, bias) @ kernel + dense_bias`` over the last axis of ``x`` [..., D].

    LayerNorm (Ba et al. 2016): ``x̂ = (x − μ)·ρ`` with ``μ = mean(x)``, ``ρ = (E[x²] − μ² + 1e-6)^(−1/2)``
    (flax's fast variance), ``y = x̂·s + b``. The value is that of flax's ``LayerNorm`` then ``Dense``;
    the function exists for its cost. Neither pass materialises anything ``[N, D]``-sized (D the wide
    input): forward ``y = ρ·(x W' − μ·1ᵀW') + (bW + c)`` with ``W' = s ⊙ W``; backward from
    ``G = x̂ᵀ g = xᵀ(ρg) − 1 ⊗ Σ_n μρg`` (one product with the raw input), ``∂W = s ⊙ G + b ⊗ Σg``,
    ``∂s = Σ_k W ⊙ G``, ``∂b = W Σg``, ``∂c = Σg``. Autodiff of the composition instead builds
    ``x̂`` and ``g Wᵀ`` over the whole batch; on a CPU this op made MAPPO's update on SMAX 27m_vs_30m
    (1,449-wide agent-specific state) about ten times faster. ``∂x``, never used for data inputs (XLA
    then drops it), is the usual LayerNorm input gradient. ``precision="bf16"``: the two wide products
    (``x W'`` forward, ``xᵀ(ρg)`` backward) on bfloat16 operands, float32 accumulation.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    return _layer_norm_dense(precision, x, scale, bias, kernel, dense_bias)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _layer_norm_dense(precision, x, scale, bias, kernel, dense_bias):
    return _lnd_fwd(precision, x, scale, bias, kernel, dense_bias)[0]


def _lnd_fwd(precision, x, scale, bias, kernel, dense_bias):
    mu, rho = _moments(x)
    w = scale[:, None] * kernel
    y = rho * (matmul(x, w, precision) - mu * w.sum(0)) + (matmul(bias, kernel, precision) + dense_bias)
    return y, (x, mu, rho, scale, bias, kernel)


def _lnd_bwd(precision, res, g):
    x, mu, rho, scale, bias, kernel = res
    lead = tuple(range(g.ndim - 1))
    rg = rho * g
    # xᵀ(ρg) contracts the rows of 2-D views (a free reshape of the contiguous leading axes). Contracting the
    # leading axes of x [T, B, D] in place instead made XLA's CPU backend copy x transposed to [D, T·B]
    # on every call (its canonical form for a dot with two contracting axes): at Spread N = 100 that copy of
    # the actor's and the critic's 51,200 × 700 minibatch inputs was about a quarter of MAPPO's update.
    x2, rg2 = x.reshape(-1, x.shape[-1]), rg.reshape(-1, rg.shape[-1])
    rows = (((0,), (0,)), ((), ()))
    if precision == "float32":
        xg = jax.lax.dot_general(x2, rg2, rows)
    else:
        xg = jax.lax.dot_general(x2.astype(jnp.bfloat16), rg2.astype(jnp.bfloat16), rows,
                                 preferred_element_type=jnp.float32)
    G = xg - (mu * rg).sum(lead)[None]  # x̂ᵀ g, [D, K]
    gsum = g.sum(lead)
    d_kernel = scale[:, None] * G + bias[:, None] * gsum[None]
    d_scale = (kernel * G).sum(1)
    d_bias = matmul(kernel, gsum, precision)
    xh = (x - mu) * rho
    dxh = matmul(g, kernel.T, precision) * scale
    dx = rho * (dxh - dxh.mean(-1, keepdims=True) - xh * (dxh * xh).mean(-1, keepdims=True))
    return dx, d_scale, d_bias, d_kernel, gsum


_layer_norm_dense.defvjp(_lnd_fwd, _lnd_bwd)


class LayerNormDense(nn.Module):
    """Input LayerNorm then a dense layer, as one op with a hand-written backward (see
    :func:`layer_norm_dense`). Parameters: ``scale``, ``bias`` (LayerNorm), ``kernel``, ``dense_bias``."""

    features: int
    precision: str = "float32"

    @nn.compact
    def __call__(self, x):
        d = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (d,))
        bias = self.param("bias", nn.initializers.zeros, (d,))
        kernel = self.param("kernel", orthogonal(np.sqrt(2)), (d, self.features))
        dense_bias = self.param("dense_bias", constant(0.0), (self.features,))
        return layer_norm_dense(x, scale, bias, kernel, dense_bias, self.precision)


class Torso(nn.Module):
    """Optional input LayerNorm (MAPPO's feature normalisation) then ``len(hidden)`` dense layers."""

    hidden: Sequence[int]
    activation: str = "tanh"
    layer_norm_input: bool = False
    precision: str = "float32"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for i, width in enumerate(self.hidden):
            if i == 0 and self.layer_norm_input:
                x = act(LayerNormDense(width, self.precision)(x))
            else:
                x = act(dense(width, self.precision, kernel_init=orthogonal(np.sqrt(2)), bias_init=constant(0.0))(x))
        return x


class AttentionTorso(nn.Module):
    """A MAAC-style attention encoder of every agent's observation for a value critic (Li et al.'s MA-PPO;
    Iqbal & Sha 2019, §3.2, with observations in place of observation-action pairs, since V has no action).

    The input ``x`` ``[..., N·W]`` is the critic-input seam's ``attention`` layout: ``N`` entities of width
    ``W``, the own observation first (``critic_inputs.attention``). With ``s = f(x_own)``, ``e_j = g(x_j)``
    (``hidden[0]`` units, one shared ``g`` over the others) and per head ``h`` of ``heads``::

        y = ⊕_h Σ_{j ≠ own} softmax_j((S_h s)ᵀ(K_h e_j)/√d) · LeakyReLU(V_h e_j)
        out = act(W_o (s ⊕ y))                              (``hidden[-1]`` units; the value head follows)

    ``layer_norm_input`` normalises each entity's features (MAPPO's feature normalisation). One agent (no
    others) gives ``y = 0``. Float32 products only (the ``bf16`` path of :func:`matmul` is not wired here).
    """

    entities: int
    heads: int
    hidden: Sequence[int]
    activation: str = "tanh"
    layer_norm_input: bool = False

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        N, H, K = self.entities, self.hidden[0], self.heads
        d = H // K
        x = x.reshape(x.shape[:-1] + (N, x.shape[-1] // N))
        if self.layer_norm_input:
            x = nn.LayerNorm(name="entity_norm")(x)
        init = dict(kernel_init=orthogonal(np.sqrt(2)), bias_init=constant(0.0))
        s = act(nn.Dense(H, name="own_encoder", **init)(x[..., 0, :]))
        if N > 1:
            e = act(nn.Dense(H, name="other_encoder", **init)(x[..., 1:, :]))
            split = lambda z: z.reshape(z.shape[:-1] + (K, d))  # noqa: E731
            sel = split(nn.Dense(H, use_bias=False, name="selector")(s))  # [..., K, d]
            keys = split(nn.Dense(H, use_bias=False, name="key")(e))  # [..., N-1, K, d]
            vals = split(nn.leaky_relu(nn.Dense(H, use_bias=False, name="value")(e), 0.01))
            w = jax.nn.softmax(jnp.einsum("...hd,...jhd->...hj", sel, keys) / np.sqrt(d), axis=-1)
            y = jnp.einsum("...hj,...jhd->...hd", w, vals).reshape(s.shape)
        else:
            y = jnp.zeros_like(s)
        return act(nn.Dense(self.hidden[-1], name="post", **init)(jnp.concatenate([s, y], -1)))


def _gru_cell(h, gx, kernel, bias_n, precision="float32"):
    """One GRU step from the input projection ``gx`` [..., 3H] (r, z, n blocks): the equations of
    :class:`ResetGRU` with one fused recurrent product ``h @ kernel`` [H, 3H]."""
    H = h.shape[-1]
    gh = matmul(h, kernel, precision)
    r = jax.nn.sigmoid(gx[..., :H] + gh[..., :H])
    z = jax.nn.sigmoid(gx[..., H:2 * H] + gh[..., H:2 * H])
    n = jnp.tanh(gx[..., 2 * H:] + r * (gh[..., 2 * H:] + bias_n))
    return (1.0 - z) * n + z * h


def _dense_product(x, kernel, precision: str = "float32"):
    """``x·W`` over the last axis of ``x``: the product of :func:`dense` (flax ``Dense``), as a pure function."""
    dims = (((x.ndim - 1,), (0,)), ((), ()))
    if precision == "bf16":
        return _bf16_dot_general(x, kernel, dims)
    return jax.lax.dot_general(x, kernel, dims)


def _dense_arith(x, kernel, bias, precision: str = "float32"):
    """``x·W + b``, the arithmetic of :func:`dense` (flax ``Dense``), as a pure function."""
    y = _dense_product(x, kernel, precision)
    return y + jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))


class ResetGRU(nn.Module):
    """GRU over time whose state is zeroed where ``resets`` marks the first step of an episode.

    Same equations as ``flax.linen.GRUCell`` (Cho et al. 2014)::

        r = σ(W_ir x + b_ir + W_hr h),   z = σ(W_iz x + b_iz + W_hz h)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),   h' = (1 − z) ⊙ n + z ⊙ h

    laid out as flax's cell under ``nn.scan`` computes it, with fewer products: each step of the time loop
    does its own input product ``x_t·W + b`` (``[B, D] × [D, 3H]``) and one fused recurrent product
    ``[B, H] × [H, 3H]`` (flax's cell does six small ones); autodiff of the loop accumulates
    ``∂W = Σ_t x_tᵀ∂y_t`` step by step, as the peer's does. On this CPU that is faster than one
    ``[T·B, D] × [D, 3H]`` product before the loop whose ``[T, B, 3H]`` result the loop reads back slice by
    slice (T = 128, B = 160, D = H = 128, CPU time on the loaded 2-core machine, five calls each: forward
    74–79 → 35–39 ms, forward and backward 179–196 → 146–153 ms). The two layouts agree to float32 rounding
    (XLA's CPU product sums in an order that depends on the number of rows), not bit for bit:
    ``tests/test_gru.py`` compares values and gradients with the whole-input projection.
    Input kernels are LeCun-normal and recurrent kernels orthogonal, as in flax.
    """

    features: int
    precision: str = "float32"

    def setup(self):
        H = self.features
        self.input_proj = dense(3 * H, self.precision, kernel_init=nn.initializers.lecun_normal(),
                                bias_init=constant(0.0))
        self.recurrent_kernel = self.param(
            "recurrent_kernel", lambda k, s: jnp.concatenate(
                [orthogonal()(kk, (H, H)) for kk in jax.random.split(k, 3)], axis=1), (H, 3 * H))
        self.recurrent_bias_n = self.param("recurrent_bias_n", constant(0.0), (H,))

    def __call__(self, hidden, xs, resets):
        """``hidden`` [B, H], ``xs`` [T, B, D], ``resets`` [T, B] → (last hidden, hidden at every step)."""
        if self.is_initializing():
            self.input_proj(xs)  # creates input_proj's parameters, read below
        w = self.input_proj.variables["params"]
        kernel, bias_n = self.recurrent_kernel, self.recurrent_bias_n

        def step(h, inp):
            x, r0 = inp
            g = _dense_arith(x, w["kernel"], w["bias"], self.precision)  # input_proj(x_t), inside the loop
            h = _gru_cell(jnp.where(r0[:, None], 0.0, h), g, kernel, bias_n, self.precision)
            return h, h

        return jax.lax.scan(step, hidden, (xs, resets))

    def one_step(self, hidden, x):
        """One cell step from given hidden states, any leading axes (no reset)."""
        return _gru_cell(hidden, self.input_proj(x), self.recurrent_kernel, self.recurrent_bias_n, self.precision)


class SequenceNet(nn.Module):
    """Torso → (GRU) → head, on ``[T, B, D]``. ``out`` is the head width (actions, or 1 for a value).

    With ``with_states=True`` it also returns the GRU's output at every step (the torso's without a GRU),
    from which :meth:`final_value` gives the head's output one step *after* a step t on another input — the
    value of the pre-reset state at an episode end, needed to bootstrap at a truncation without re-running
    the rollout.
    """

    out: int
    hidden: Sequence[int]
    recurrent: bool
    activation: str
    layer_norm_input: bool
    head_gain: float
    precision: str = "float32"
    entities: int = 0  # > 0: the input is that many entities and the torso is an AttentionTorso
    heads: int = 4
    # orthogonal gain of the dense layer after the GRU: √2 (PPO convention); JaxMARL's MAPPO-GRU uses 2
    post_gru_gain: float = float(np.sqrt(2))

    def setup(self):
        p = self.precision
        if self.entities:
            self.torso = AttentionTorso(self.entities, self.heads, self.hidden, self.activation,
                                        self.layer_norm_input)
        else:
            self.torso = Torso(self.hidden, self.activation, self.layer_norm_input, p)
        if self.recurrent:
            self.gru = ResetGRU(self.hidden[-1], p)
            self.post = dense(self.hidden[-1], p, kernel_init=orthogonal(self.post_gru_gain),
                              bias_init=constant(0.0))
        self.head = dense(self.out, p, kernel_init=orthogonal(self.head_gain), bias_init=constant(0.0))

    def _top(self, h):
        if self.recurrent:
            h = ACTIVATIONS[self.activation](self.post(h))
        return self.head(h)

    def __call__(self, hidden, x, resets, with_states: bool = False):
        emb = self.torso(x)
        if self.recurrent:
            hidden, emb = self.gru(hidden, emb, resets)
        y = self._top(emb)
        return hidden, ((y, emb) if with_states else y)

    def final_value(self, states, final_x):
        """The head's output on ``final_x`` one step after GRU outputs ``states`` (any leading axes):
        ``top(GRU(h_t, torso(x'_t)))``; without a GRU ``top(torso(x'_t))``, ``states`` unread."""
        femb = self.torso(final_x)
        if self.recurrent:
            femb = self.gru.one_step(states, femb)
        return self._top(femb)


class Actor(nn.Module):
    """Policy network. Discrete: masked logits [T,B,U]. Continuous: mean [T,B,U] and a learned,
    state-independent log-std per action dimension (returned broadcast to the mean's shape)."""

    num_actions: int
    discrete: bool
    hidden: Sequence[int] = (64, 64)
    recurrent: bool = False
    activation: str = "tanh"
    layer_norm_input: bool = False
    init_log_std: float = -0.5
    precision: str = "float32"
    post_gru_gain: float = float(np.sqrt(2))

    @nn.compact
    def __call__(self, hidden, obs, resets, avail):
        hidden, out = SequenceNet(self.num_actions, self.hidden, self.recurrent, self.activation,
                                  self.layer_norm_input, 0.01, self.precision,
                                  post_gru_gain=self.post_gru_gain)(hidden, obs, resets)
        if self.discrete:
            return hidden, jnp.where(avail, out, MASKED_LOGIT)
        log_std = self.param("log_std", constant(self.init_log_std), (self.num_actions,))
        return hidden, jnp.concatenate([out, jnp.broadcast_to(log_std, out.shape)], axis=-1)


class Critic(nn.Module):
    """Value network; ``entities > 0`` makes its torso an :class:`AttentionTorso` over that many agents'
    observations (``critic_input=attention``)."""

    hidden: Sequence[int] = (64, 64)
    recurrent: bool = False
    activation: str = "tanh"
    layer_norm_input: bool = False
    precision: str = "float32"
    entities: int = 0
    heads: int = 4
    post_gru_gain: float = float(np.sqrt(2))

    def setup(self):
        # the attribute's name is the parameter scope the compact form gave it, so parameter trees (and saved
        # checkpoints) keep their names
        self.SequenceNet_0 = SequenceNet(1, self.hidden, self.recurrent, self.activation, self.layer_norm_input,
                                         1.0, self.precision, self.entities, self.heads, self.post_gru_gain)

    def __call__(self, hidden, x, resets, with_states: bool = False):
        """Values [T, B]; with ``with_states`` ``(values, per-step GRU outputs [T, B, H])``, see SequenceNet."""
        hidden, out = self.SequenceNet_0(hidden, x, resets, with_states)
        return hidden, ((out[0][..., 0], out[1]) if with_states else out[..., 0])

    def final_value(self, states, final_x):
        """Values of the pre-reset states ``final_x`` [..., D] one step after GRU outputs ``states`` [..., H]."""
        return self.SequenceNet_0.final_value(states, final_x)[..., 0]


def distribution(params_out: jax.Array, discrete: bool):
    """The action distribution from an actor's output (logits, or mean ⊕ log-std)."""
    if discrete:
        return distrax.Categorical(logits=params_out)
    mean, log_std = jnp.split(params_out, 2, axis=-1)
    return distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))


class AgentNets(NamedTuple):
    """How to run a module over the agent axis."""

    module: Any
    shared: bool
    num_agents: int
    hidden_size: int  # carried hidden width (1 for feed-forward)


def init_agents(nets: AgentNets, rng: jax.Array, *example_inputs) -> Any:
    """Initialise parameters: one set (shared) or a stack of ``num_agents`` sets (leading axis)."""
    hidden = jnp.zeros((1, nets.hidden_size))
    args = [x[None, None] for x in example_inputs]  # [T=1, B=1, ...]
    resets = jnp.zeros((1, 1), bool)
    if nets.shared:
        return nets.module.init(rng, hidden, args[0], resets, *args[1:])
    keys = jax.random.split(rng, nets.num_agents)
    return jax.vmap(lambda k: nets.module.init(k, hidden, args[0], resets, *args[1:]))(keys)


def apply_agents(nets: AgentNets, params, hidden, x, resets, *extra, **static):
    """Apply over agents. ``hidden`` [E, A, H]; ``x`` [T, E, A, D]; ``resets`` [T, E] or [T, E, A]; ``extra`` [T, E, A, ...]
    or None; ``static``: keyword arguments passed to the module as they are (not arrays).

    Returns ``(hidden [E, A, H], out [T, E, A, ...])`` (``out`` may be a tuple of such arrays).
    """
    T, E, A = x.shape[:3]
    # [T, E] per env; [T, E, A] when a minibatch holds different envs per agent (minibatch_over=agents)
    resets_a = resets if resets.ndim == 3 else jnp.broadcast_to(resets[:, :, None], (T, E, A))
    if nets.shared:
        flat = lambda z: None if z is None else z.reshape((T, E * A) + z.shape[3:])
        h, out = nets.module.apply(params, hidden.reshape(E * A, -1), flat(x), flat(resets_a),
                                   *[flat(z) for z in extra], **static)
        unflat = lambda z: z.reshape((T, E, A) + z.shape[2:])
        return h.reshape(E, A, -1), jax.tree.map(unflat, out)

    def one(p, h, xi, ri, *ei):
        return nets.module.apply(p, h, xi, ri, *ei, **static)

    in_axes = (0, 1, 2, 2) + tuple(None if z is None else 2 for z in extra)
    return jax.vmap(one, in_axes=in_axes, out_axes=(1, 2))(params, hidden, x, resets_a, *extra)


def apply_rows(nets: AgentNets, params, method: str, *rows):
    """``module.<method>`` on rows of every agent: each of ``rows`` ``[K, A, ...]`` → ``[K, A, ...]``; shared
    parameters fold the agents into the rows, per-agent parameters are ``vmap``-ed over the agent axis."""
    K, A = rows[0].shape[:2]
    fn = getattr(type(nets.module), method)
    if nets.shared:
        out = nets.module.apply(params, *[r.reshape((K * A,) + r.shape[2:]) for r in rows], method=fn)
        return out.reshape((K, A) + out.shape[1:])
    return jax.vmap(lambda p, *r: nets.module.apply(p, *r, method=fn), in_axes=(0,) + (1,) * len(rows),
                    out_axes=1)(params, *rows)
