"""The fused LayerNorm→Dense op against flax's own LayerNorm and Dense, values and every gradient."""
import re

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


def _entry_arrays(hlo_text: str):
    """(dims, minor-to-major layout) of every array the compiled program's entry computation writes."""
    entry = hlo_text[hlo_text.index("\nENTRY"):]
    for m in re.finditer(r"\n\s*(?:ROOT )?%\S+ = \w+\[([\d,]*)\]\{([\d,]*)[^}]*\} (\w[\w-]*)\(", entry):
        if m.group(1) and m.group(3) not in ("parameter", "bitcast"):
            yield [int(d) for d in m.group(1).split(",")], [int(d) for d in m.group(2).split(",")]


@pytest.mark.parametrize("lead", [(1, 96), (3, 32)])
def test_layer_norm_dense_gradient_reads_the_input_in_place(lead):
    """The parameter gradient's one wide product, xᵀ(ρg), contracts the rows of a 2-D view of x. With the
    rows spread over two axes ([T, B, D], as the trainer passes a minibatch) XLA's CPU backend turned that
    product into a copy of x transposed to [D, T·B] on every call: at Spread N = 100 (51,200 rows × 700) that
    copy, for the actor's and the critic's input in every minibatch, was about a quarter of MAPPO's update.
    Guard: no array of x's size that the compiled gradient writes has D as anything but its minor axis."""
    if jax.default_backend() != "cpu":
        pytest.skip("the guarded layout choice is the CPU backend's")
    D = 40
    x = jnp.ones(lead + (D,))
    params = (jnp.ones(D), jnp.zeros(D), jnp.ones((D, 8)), jnp.zeros(8))
    grad = jax.jit(jax.grad(lambda p, x: layer_norm_dense(x, *p).sum()))
    arrays = [(dims, layout) for dims, layout in _entry_arrays(grad.lower(params, x).compile().as_text())
              if int(np.prod(dims)) == x.size]
    assert all(dims[layout[0]] == D for dims, layout in arrays), arrays


# ----------------------------------------------------------------------------- precision=bf16 (opt-in)


@pytest.mark.parametrize("jit", [False, True])
def test_bf16_matmul_rounds_operands_and_accumulates_in_float32(jit):
    """bfloat16 keeps 8 significant bits: 1 + 2⁻⁸ rounds to 1 (a tie, to even), 2⁻⁸ is exact. So
    [1 + 2⁻⁸, 2⁻⁸]·[1, 1] is 1.0078125 in float32 and 1.00390625 in bf16 mode: the operand rounded, the sum
    accumulated and returned in float32 (a bfloat16 result would round it to 1.0)."""
    from trustmarl.networks import matmul
    a, b = jnp.array([[1 + 2.0**-8, 2.0**-8]]), jnp.ones((2, 1))
    f = jax.jit(matmul, static_argnums=2) if jit else matmul
    assert float(f(a, b, "float32")[0, 0]) == 1.0078125
    out = f(a, b, "bf16")
    assert out.dtype == jnp.float32 and float(out[0, 0]) == 1.00390625


def test_bf16_layer_norm_dense_close_to_float32_values_and_gradients():
    args = [a.astype(jnp.float32) for a in _args()]
    np.testing.assert_allclose(layer_norm_dense(*args, "bf16"), layer_norm_dense(*args), rtol=3e-2, atol=3e-2)
    w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 7, 5)).astype(np.float32))
    grads = {p: jax.grad(lambda *a: jnp.sum(jnp.tanh(layer_norm_dense(*a, p)) * w), argnums=(1, 2, 3, 4))(*args)
             for p in ("float32", "bf16")}
    for g, r in zip(grads["bf16"], grads["float32"]):
        assert g.dtype == jnp.float32
        np.testing.assert_allclose(g, r, rtol=5e-2, atol=5e-2)
    with pytest.raises(ValueError, match="precision='fp8' is not one of float32, bf16"):
        layer_norm_dense(*args, "fp8")


def _dot_operand_dtypes(jaxpr) -> list[set]:
    """Operand dtypes of every dot_general in ``jaxpr`` and its sub-jaxprs (scan bodies, custom rules)."""
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            out.append({v.aval.dtype for v in eqn.invars})
        for param in eqn.params.values():
            for sub in (param if isinstance(param, (list, tuple)) else [param]):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    out.extend(_dot_operand_dtypes(inner))
    return out


@pytest.fixture(scope="module")
def bf16_run():
    """A tiny MAPPO-GRU run (input LayerNorm, GRU, dense layers: every product kind) with precision=bf16."""
    from conftest import tiny
    from trustmarl.trainers import make_train
    trainer = make_train(tiny(algo="mappo", env="mpe_spread", num_agents=2, network="gru", hidden=(16,),
                              layer_norm_input=True, precision="bf16"))
    state, metrics = jax.jit(trainer)(jax.random.PRNGKey(0))
    return trainer, state, metrics


def test_bf16_run_keeps_parameters_and_optimiser_state_float32(bf16_run):
    trainer, state, metrics = bf16_run
    learner = state.learner
    floats = [x for x in jax.tree.leaves((learner.actor_params, learner.critic_params, learner.actor_opt,
                                          learner.critic_opt)) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and {x.dtype for x in floats} == {jnp.dtype(jnp.float32)}
    assert int(np.asarray(metrics["nonfinite"]).max()) == 0
    assert np.isfinite(np.asarray(metrics["policy_loss"])).all() and np.isfinite(np.asarray(metrics["value_loss"])).all()
    # the products really are bfloat16: the actor's forward pass has bf16 dot_generals, the float32 one none
    batch_x = jnp.zeros((2, 1, trainer.num_agents, trainer.actor_in_dim))
    h = jnp.zeros((1, trainer.num_agents, trainer.hidden_size))
    avail = jnp.ones((2, 1, trainer.num_agents, trainer.spec.num_actions), bool)
    from trustmarl.networks import apply_agents
    closed = jax.make_jaxpr(lambda p: apply_agents(trainer.actor, p, h, batch_x, jnp.zeros((2, 1), bool),
                                                   avail))(learner.actor_params)
    dots = _dot_operand_dtypes(closed.jaxpr)
    assert len(dots) >= 4 and all(d == {jnp.dtype(jnp.bfloat16)} for d in dots), dots
    # and so are the backward pass's (bf16_matmul's own rule; a cast-then-multiply would give f32 x bf16 ones)
    out_sum = lambda p: jnp.sum(apply_agents(trainer.actor, p, h, batch_x, jnp.zeros((2, 1), bool), avail)[1])  # noqa
    grads = _dot_operand_dtypes(jax.make_jaxpr(jax.grad(out_sum))(learner.actor_params).jaxpr)
    assert len(grads) > len(dots) and all(d == {jnp.dtype(jnp.bfloat16)} for d in grads), grads


def test_precision_is_validated():
    from trustmarl.config import Config, ConfigError
    with pytest.raises(ConfigError, match="precision='fp16' is not one of float32, bf16"):
        Config.build({"precision": "fp16"})
