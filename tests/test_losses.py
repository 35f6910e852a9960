"""Hand-computed checks of the advantage estimator and critic losses, with and without jit."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl import losses as L
from trustmarl.seams.advantages import gae

both = pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])


def _maybe(f, jit):
    return jax.jit(f) if jit else f


def gae_loop(r, v, nv, term, end, gamma, lam):
    """Plain Python reference, one sequence."""
    adv = np.zeros(len(r))
    nxt = 0.0
    for t in reversed(range(len(r))):
        delta = r[t] + gamma * (1 - term[t]) * nv[t] - v[t]
        nxt = delta + gamma * lam * (1 - end[t]) * nxt
        adv[t] = nxt
    return adv


@both
def test_gae_matches_hand_loop_with_truncation_and_termination(jit):
    r = np.array([1.0, 0.5, -1.0, 2.0, 0.0, 1.0], np.float32)
    v = np.array([0.3, 0.2, 0.1, 0.4, 0.5, 0.6], np.float32)
    # step 2 terminates (no bootstrap), step 4 truncates (bootstraps from final value 0.9)
    nv = np.array([0.2, 0.1, 7.0, 0.5, 0.9, 0.8], np.float32)
    term = np.array([0, 0, 1, 0, 0, 0], np.float32)
    end = np.array([0, 0, 1, 0, 1, 0], np.float32)
    adv, ret = _maybe(lambda *a: gae(*a, 0.9, 0.8), jit)(r, v, nv, term, end)
    expected = gae_loop(r, v, nv, term, end, 0.9, 0.8)
    np.testing.assert_allclose(adv, expected, rtol=1e-6)
    np.testing.assert_allclose(ret, expected + v, rtol=1e-6)
    # worked by hand for the last two steps: delta_5 = 1 + .9*.8 - .6 = 1.12; A_4 = 0 + .9*.9 - .5 = .31
    assert adv[5] == pytest.approx(1.12, abs=1e-6)
    assert adv[4] == pytest.approx(0.31, abs=1e-6)
    # the termination cuts the bootstrap: A_2 = -1 - .1
    assert adv[2] == pytest.approx(-1.1, abs=1e-6)


def test_gae_batched_over_env_and_agent_axes():
    key = jax.random.PRNGKey(0)
    r, v, nv = (jax.random.normal(k, (5, 3, 2)) for k in jax.random.split(key, 3))
    end = jnp.array([0, 1, 0, 0, 1], bool)[:, None, None] & jnp.ones((5, 3, 1), bool)
    adv, _ = gae(r, v, nv, jnp.zeros_like(end), end, 0.99, 0.95)
    for e in range(3):
        for a in range(2):
            exp = gae_loop(np.asarray(r[:, e, a]), np.asarray(v[:, e, a]), np.asarray(nv[:, e, a]),
                           np.zeros(5), np.asarray(end[:, e, 0], float), 0.99, 0.95)
            np.testing.assert_allclose(adv[:, e, a], exp, rtol=1e-5, atol=1e-6)


@both
def test_value_loss_clipped_and_huber(jit):
    f = _maybe(lambda v, o, t: L.value_loss(v, o, t, 0.2, 0.0), jit)
    # V=1.5, V_old=1.0, R=2.0: unclipped .5*(.5)^2=.125; clipped V=1.2: .5*(.8)^2=.32 -> max .32
    assert float(f(jnp.array(1.5), jnp.array(1.0), jnp.array(2.0))) == pytest.approx(0.32, abs=1e-6)
    # no clipping
    g = _maybe(lambda v, o, t: L.value_loss(v, o, t, None, 0.0), jit)
    assert float(g(jnp.array(1.5), jnp.array(1.0), jnp.array(2.0))) == pytest.approx(0.125, abs=1e-6)
    # Huber with delta 1: error 3 -> 1*(3-.5) = 2.5; error .5 -> .125
    h = _maybe(lambda e: L.huber(e, 1.0), jit)
    np.testing.assert_allclose(h(jnp.array([3.0, -0.5])), [2.5, 0.125], rtol=1e-6)


def test_value_norm_debiased_statistics():
    s = L.value_norm_init()
    x = jnp.array([1.0, 3.0])
    s = L.value_norm_update(s, x, beta=0.5)
    mean, std = L.value_norm_stats(s)
    # one update: debiased mean = E[x] = 2, var = E[x^2] - 4 = 5 - 4 = 1
    assert float(mean) == pytest.approx(2.0, rel=1e-6)
    assert float(std) == pytest.approx(1.0, rel=1e-5)
    s = L.value_norm_update(s, jnp.array([5.0, 5.0]), beta=0.5)
    # EMA: m = .5*(.5*2)+.5*5 = 3, d = .75 -> mean 4; m2 = .5*(.5*5)+.5*25=13.75 -> 18.333; var 2.333
    mean, std = L.value_norm_stats(s)
    assert float(mean) == pytest.approx(4.0, rel=1e-6)
    assert float(std) ** 2 == pytest.approx(18.3333333 - 16.0, rel=1e-5)
    y = jnp.array([0.5, 7.0])
    np.testing.assert_allclose(L.denormalize(s, L.normalize(s, y)), y, rtol=1e-6)


def test_value_norm_variance_floor():
    s = L.value_norm_update(L.value_norm_init(), jnp.array([2.0, 2.0]), beta=0.9)
    _, std = L.value_norm_stats(s)
    assert float(std) == pytest.approx(0.1, rel=1e-5)  # var clamped at 1e-2


def test_advantage_normalisation_uses_active_entries_only():
    adv = jnp.array([1.0, 3.0, 100.0])
    mask = jnp.array([True, True, False])
    out = L.normalize_advantages(adv, mask)
    np.testing.assert_allclose(out[:2], [-1.0, 1.0], rtol=1e-6)


def test_explained_variance():
    t = jnp.array([1.0, 2.0, 3.0, 4.0])
    assert float(L.explained_variance(t, t, jnp.ones(4, bool))) == pytest.approx(1.0)
    assert float(L.explained_variance(jnp.full(4, 2.5), t, jnp.ones(4, bool))) == pytest.approx(0.0, abs=1e-6)
