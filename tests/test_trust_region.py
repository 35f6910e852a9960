"""Numeric tests of trustmarl.trust_region (hand-computed values, with and without jit)."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl import trust_region as tr

JIT = pytest.mark.parametrize("use_jit", [False, True], ids=["nojit", "jit"])


def maybe_jit(fn, use_jit, **kw):
    return jax.jit(fn, **kw) if use_jit else fn


def rng(seed=0):
    return np.random.default_rng(seed)


# Jitted wrappers for helper computations in tests: eager mode compiles every primitive for every
# new shape, which costs more than one jit compile of the whole function.
jtv = jax.jit(tr.categorical_tv)
jkl = jax.jit(tr.categorical_kl)
jgtv = jax.jit(tr.gaussian_tv, static_argnames=("method", "num_samples"))
jgtv1 = jax.jit(tr.gaussian_tv_1d)
jglogp = jax.jit(tr._gaussian_log_prob)


def key(seed=0):
    # The functions take any JAX key; "rbg" keys compile much faster than threefry on CPU.
    return jax.random.key(seed, impl="rbg")


# One jitted measure_update shared by the tests (same shapes and static args -> compiled once;
# compiling the PRNG is the slow part on CPU).
MEASURE = jax.jit(tr.measure_update, static_argnames=("num_mc_samples", "exact_joint_limit"))
BATCH, N_AGENTS, N_ACTIONS = (6, 4), 3, 5


def measure(old, new, avail, active, slp, slq, seed=0, exact_joint_limit=256):
    return MEASURE(
        jnp.asarray(old, jnp.float32), jnp.asarray(new, jnp.float32), jnp.asarray(avail, bool),
        jnp.asarray(active, bool), jnp.asarray(slp, jnp.float32), jnp.asarray(slq, jnp.float32),
        key(seed), num_mc_samples=512, exact_joint_limit=exact_joint_limit,
    )


# ----------------------------------------------------------------------------- clipping ranges


def test_clip_bounds_values():
    assert tr.clip_bounds(0.2, "symmetric") == pytest.approx((0.8, 1.2))
    low, high = tr.clip_bounds(0.25, "multiplicative")
    assert (low, high) == pytest.approx((0.8, 1.25))
    lo, hi = tr.clip_bounds(jnp.array([0.1, 0.2]))
    np.testing.assert_allclose(lo, [0.9, 0.8], rtol=1e-6)
    np.testing.assert_allclose(hi, [1.1, 1.2], rtol=1e-6)
    # traced eps is accepted (no concrete check possible)
    out = jax.jit(lambda e: jnp.stack(tr.clip_bounds(e, "multiplicative")))(0.5)
    np.testing.assert_allclose(out, [1 / 1.5, 1.5], rtol=1e-6)


@pytest.mark.parametrize(
    "args, words",
    [
        ((0.2, "asym"), ["'asym'", "symmetric", "multiplicative"]),
        ((0.0, "symmetric"), ["0.0", "> 0"]),
        ((-0.1, "multiplicative"), ["-0.1", "> 0"]),
    ],
)
def test_clip_bounds_errors(args, words):
    with pytest.raises(ValueError) as err:
        tr.clip_bounds(*args)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 27])
def test_eps_from_alpha_per_n(n):
    alpha = 0.5
    eps = tr.eps_from_alpha(alpha, n)
    assert eps == pytest.approx(alpha / n)
    # Section 6.2: [1 - a/N, 1 + a/N] and [N/(N+a), (N+a)/N]
    assert tr.clip_bounds(eps, "symmetric") == pytest.approx((1 - alpha / n, 1 + alpha / n))
    assert tr.clip_bounds(eps, "multiplicative") == pytest.approx((n / (n + alpha), (n + alpha) / n))


@pytest.mark.parametrize("alpha, n", [(0.5, 0), (0.5, 2.0), (0.0, 3), (-1.0, 3), (0.5, True)])
def test_eps_from_alpha_errors(alpha, n):
    with pytest.raises(ValueError) as err:
        tr.eps_from_alpha(alpha, n)
    assert "\n" not in str(err.value) and "allowed" in str(err.value)


def test_tv_bound_from_ratio_bounds():
    eps = 0.2
    np.testing.assert_allclose(tr.tv_bound_from_ratio_bounds(*tr.clip_bounds(eps)), eps / 2, rtol=1e-6)
    np.testing.assert_allclose(
        tr.tv_bound_from_ratio_bounds(*tr.clip_bounds(eps, "multiplicative")), eps / (2 + eps), rtol=1e-6
    )
    assert float(tr.tv_bound_from_ratio_bounds(1.0, 1.0)) == 0.0


# ----------------------------------------------------------------------------- ratios, surrogate


def test_joint_ratio_one_agent_equals_independent():
    r = rng(1)
    new, old = r.normal(size=(7, 1)), r.normal(size=(7, 1))
    np.testing.assert_allclose(
        tr.joint_log_ratio(new, old), tr.independent_log_ratio(new, old)[:, 0], rtol=1e-6
    )


@JIT
def test_joint_ratio_is_product_over_active(use_jit):
    new = jnp.log(jnp.array([[0.5, 0.2, 0.9], [0.1, 0.4, 0.3]]))
    old = jnp.log(jnp.array([[0.25, 0.4, 0.3], [0.2, 0.2, 0.3]]))
    active = jnp.array([[True, True, False], [True, True, True]])
    f = maybe_jit(tr.joint_log_ratio, use_jit)
    out = np.exp(np.asarray(f(new, old, active)))
    np.testing.assert_allclose(out, [2.0 * 0.5, 0.5 * 2.0 * 1.0], rtol=1e-6)
    out_all = np.exp(np.asarray(f(new, old)))
    np.testing.assert_allclose(out_all, [2.0 * 0.5 * 3.0, 1.0], rtol=1e-6)
    # agent axis other than the last
    np.testing.assert_allclose(
        np.exp(np.asarray(tr.joint_log_ratio(new.T, old.T, active.T, axis=0))), out, rtol=1e-6
    )


@JIT
def test_clipped_surrogate_and_clip_fraction(use_jit):
    ratio = jnp.array([0.5, 0.9, 1.0, 1.3, 1.3, 0.5])
    adv = jnp.array([1.0, -2.0, 3.0, 2.0, -1.0, -1.0])
    low, high = tr.clip_bounds(0.2)
    f = maybe_jit(tr.clipped_surrogate, use_jit)
    out = f(ratio, adv, low, high)
    # min(rA, clip(r)A): [0.5, -1.8, 3.0, 2.4, -1.3, -0.8]
    np.testing.assert_allclose(out, [0.5, -1.8, 3.0, 2.4, -1.3, -0.8], rtol=1e-6)
    assert float(tr.clip_fraction(ratio, low, high)) == pytest.approx(4 / 6)
    # binding: (A>0 & r>1.2) or (A<0 & r<0.8): entries 3 and 5
    assert float(tr.clip_fraction(ratio, low, high, advantage=adv)) == pytest.approx(2 / 6)
    mask = jnp.array([1, 1, 1, 0, 0, 0])
    assert float(tr.clip_fraction(ratio, low, high, mask=mask)) == pytest.approx(1 / 3)


# ----------------------------------------------------------------------------- categorical divergences


@JIT
def test_categorical_tv_kl_hand_computed(use_jit):
    p = jnp.log(jnp.array([0.5, 0.3, 0.2]))
    q = jnp.log(jnp.array([0.2, 0.3, 0.5])) + 1.7  # logits, not normalised
    tv = maybe_jit(tr.categorical_tv, use_jit)(p, q)
    kl = maybe_jit(tr.categorical_kl, use_jit)(p, q)
    assert float(tv) == pytest.approx(0.3, abs=1e-6)
    assert float(kl) == pytest.approx(0.5 * math.log(2.5) + 0.2 * math.log(0.4), abs=1e-6)
    assert float(tr.categorical_tv(p, p)) == pytest.approx(0.0, abs=1e-7)
    assert float(tr.categorical_kl(p, p)) == pytest.approx(0.0, abs=1e-7)


@JIT
def test_categorical_divergences_respect_avail_mask(use_jit):
    # the unavailable action has a large logit that must be ignored
    p = jnp.array([math.log(0.5), math.log(0.5), 10.0])
    q = jnp.array([math.log(0.25), math.log(0.75), -3.0])
    mask = jnp.array([True, True, False])
    tv = maybe_jit(tr.categorical_tv, use_jit)(p, q, mask)
    kl = maybe_jit(tr.categorical_kl, use_jit)(p, q, mask)
    assert float(tv) == pytest.approx(0.25, abs=1e-6)
    assert float(kl) == pytest.approx(0.5 * math.log(2.0) + 0.5 * math.log(0.5 / 0.75), abs=1e-6)
    np.testing.assert_allclose(
        np.exp(tr.masked_log_softmax(p, mask)), [0.5, 0.5, 0.0], atol=1e-7
    )
    # 0/1 integer masks behave like booleans; gradients stay finite
    g = jax.grad(lambda x: tr.categorical_kl(p, x, mask.astype(jnp.int32)))(q)
    assert np.all(np.isfinite(g))


def test_categorical_broadcast_matches_vmap():
    r = rng(2)
    p, q = r.normal(size=(4, 3, 5)), r.normal(size=(4, 3, 5))
    mask = r.random((4, 3, 5)) > 0.3
    mask[..., 0] = True
    vm = jax.vmap(jax.vmap(tr.categorical_tv))(p, q, mask)
    np.testing.assert_allclose(tr.categorical_tv(p, q, mask), vm, rtol=1e-6)
    pn = np.where(mask, np.exp(p), 0)
    pn /= pn.sum(-1, keepdims=True)
    qn = np.where(mask, np.exp(q), 0)
    qn /= qn.sum(-1, keepdims=True)
    np.testing.assert_allclose(tr.categorical_tv(p, q, mask), 0.5 * np.abs(pn - qn).sum(-1), rtol=1e-5, atol=1e-7)


def test_shape_errors():
    with pytest.raises(AssertionError):
        tr.categorical_tv(jnp.zeros(3), jnp.zeros(4))
    with pytest.raises(ValueError, match="avail_mask"):
        tr.categorical_tv(jnp.zeros(3), jnp.zeros(3), jnp.ones(4, bool))
    with pytest.raises(ValueError, match="rank"):
        tr.measure_update(jnp.zeros(3), jnp.zeros(3), None, None, jnp.zeros(()), jnp.zeros(()))


# ----------------------------------------------------------------------------- Theorem 5.3


def _ratios_within(p, low, high, r):
    """Random ratios rho(a) in [low, high] with sum_a p(a) rho(a) = 1 (so q = p * rho is normalised)."""
    u = r.uniform(low, high, size=p.shape)
    m = (p * u).sum(-1, keepdims=True)
    lam_hi = (1 - low) / (m - low)  # m > 1: mix towards low
    lam_lo = (high - 1) / (high - m)  # m < 1: mix towards high
    rho = np.where(m > 1, lam_hi * u + (1 - lam_hi) * low, lam_lo * u + (1 - lam_lo) * high)
    return rho


@pytest.mark.parametrize("kind", ["symmetric", "multiplicative"])
def test_theorem_5_3_bounded_ratios_bound_tv(kind):
    """Ratios within [low, high] for every action and state => per-state TV <= (h-1)(1-l)/(h-l) <= eps.

    Theorem 5.3 states E_s D_TV <= eps for [1/(1+eps), 1+eps]; the sharp bound is eps/(2+eps)
    there and eps/2 for [1-eps, 1+eps].
    """
    r = rng(3)
    alpha, n_agents, n_actions, batch = 0.6, N_AGENTS, N_ACTIONS, 512
    eps = tr.eps_from_alpha(alpha, n_agents)
    low, high = tr.clip_bounds(eps, kind)
    p = r.dirichlet(np.ones(n_actions), size=(batch, n_agents))
    rho = _ratios_within(p, low, high, r)
    q = p * rho
    np.testing.assert_allclose(q.sum(-1), 1.0, rtol=1e-12)
    assert rho.min() >= low - 1e-12 and rho.max() <= high + 1e-12

    sharp = float(tr.tv_bound_from_ratio_bounds(low, high))
    assert sharp == pytest.approx(eps / 2 if kind == "symmetric" else eps / (2 + eps), rel=1e-6)
    old_logits, new_logits = jnp.log(p).astype(jnp.float32), jnp.log(q).astype(jnp.float32)
    tv = np.asarray(jtv(old_logits, new_logits))
    assert tv.max() <= sharp + 1e-6
    assert tv.mean() <= eps  # Theorem 5.3 as stated

    # the same through measure_update, with the Section 6.2 budget: sum_i E[TV_i] <= alpha
    p, q = p[:24].reshape(BATCH + p.shape[1:]), q[:24].reshape(BATCH + q.shape[1:])
    sampled = r.integers(n_actions, size=BATCH + (n_agents,))
    lp_old = np.take_along_axis(np.log(p), sampled[..., None], -1)[..., 0]
    lp_new = np.take_along_axis(np.log(q), sampled[..., None], -1)[..., 0]
    ones = np.ones(p.shape, bool)
    m = measure(np.log(p), np.log(q), ones, ones[..., 0], lp_old, lp_new)
    assert np.all(np.asarray(m.dist_ratio_min) >= low - 1e-5)
    assert np.all(np.asarray(m.dist_ratio_max) <= high + 1e-5)
    assert np.all(np.asarray(m.ratio_min) >= low - 1e-5) and np.all(np.asarray(m.ratio_max) <= high + 1e-5)
    assert np.all(np.asarray(m.tv_mean) <= sharp + 1e-6)
    assert float(m.sum_tv) <= n_agents * sharp + 1e-5 <= alpha


def test_theorem_5_3_sharp_bound_is_attained():
    eps = 0.3
    low, high = tr.clip_bounds(eps)
    x = (1 - low) / (high - low)  # p-mass given ratio `high`
    p = np.array([x / 2, x / 2, (1 - x) / 3, (1 - x) / 3, (1 - x) / 3])
    q = p * np.array([high, high, low, low, low])
    tv = float(tr.categorical_tv(jnp.log(p), jnp.log(q)))
    assert tv == pytest.approx(eps / 2, rel=1e-5)


# ----------------------------------------------------------------------------- joint TV / KL


def _enumerate_joint(p, q):
    """numpy brute force over joint actions for p, q [agent, action] (probabilities)."""
    n, a = p.shape
    tv, kl = 0.0, 0.0
    for acts in itertools.product(range(a), repeat=n):
        pj = np.prod([p[i, acts[i]] for i in range(n)])
        qj = np.prod([q[i, acts[i]] for i in range(n)])
        tv += 0.5 * abs(pj - qj)
        kl += pj * (math.log(pj) - math.log(qj))
    return tv, kl


@JIT
def test_joint_tv_exact_and_kl_match_brute_force(use_jit):
    r = rng(4)
    batch, n, a = 5, 3, 3
    p = r.dirichlet(np.ones(a), size=(batch, n))
    q = r.dirichlet(np.ones(a), size=(batch, n))
    lp, lq = jnp.log(p).astype(jnp.float32), jnp.log(q).astype(jnp.float32)
    exact = maybe_jit(tr.joint_tv_exact, use_jit)(lp, lq)
    joint_kl = tr.joint_kl(tr.categorical_kl(lp, lq))
    brute = np.array([_enumerate_joint(p[b], q[b]) for b in range(batch)])
    np.testing.assert_allclose(exact, brute[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(joint_kl, brute[:, 1], rtol=1e-4, atol=1e-6)
    tv_i = tr.categorical_tv(lp, lq)
    union, coupling = tr.joint_tv_upper_bound(tv_i), tr.joint_tv_coupling_bound(tv_i)
    assert np.all(np.asarray(tv_i).max(-1) <= np.asarray(exact) + 1e-6)
    assert np.all(np.asarray(exact) <= np.asarray(coupling) + 1e-6)
    assert np.all(np.asarray(coupling) <= np.asarray(union) + 1e-6)
    assert np.all(np.asarray(union) <= 1.0)


def test_joint_tv_exact_too_large():
    with pytest.raises(ValueError) as err:
        tr.joint_tv_exact(jnp.zeros((10, 5)), jnp.zeros((10, 5)), max_joint_actions=4096)
    assert "5^10" in str(err.value) and "\n" not in str(err.value)


def test_joint_tv_mc_matches_exact_3_agents_3_actions():
    r = rng(5)
    batch, n, a, k = 64, 3, 3, 4096
    lp = jnp.asarray(r.normal(size=(batch, n, a)), jnp.float32)
    lq = lp + 0.6 * jnp.asarray(r.normal(size=(batch, n, a)), jnp.float32)
    exact = np.asarray(jax.jit(tr.joint_tv_exact)(lp, lq))
    f = jax.jit(tr.joint_tv_mc, static_argnames="num_samples")
    mc = np.asarray(f(key(0), lp, lq, num_samples=k))
    assert mc.shape == (batch,)
    # each sample term lies in [0, 1]: per-state standard error <= 1/(2 sqrt(k)) ~ 0.008
    assert np.max(np.abs(mc - exact)) < 5 / (2 * math.sqrt(k))
    # unbiased: the mean over 64 states has standard error <= 0.001
    assert abs(mc.mean() - exact.mean()) < 0.005


def test_joint_quantities_ignore_inactive_agents():
    r = rng(6)
    n, a = 3, 4
    lp = jnp.asarray(r.normal(size=(n, a)), jnp.float32)
    lq = lp.at[2].set(lp[2] + 5.0 * jnp.arange(a))  # agent 2 changes a lot ...
    active = jnp.array([True, True, False])  # ... but is inactive
    lq = lq.at[0].add(0.3 * jnp.arange(a))

    @jax.jit
    def quantities(lp, lq, active):
        tv_i, kl_i = tr.categorical_tv(lp, lq), tr.categorical_kl(lp, lq)
        return (
            tr.joint_tv_exact(lp, lq, active_mask=active),
            tr.joint_tv_upper_bound(tv_i, active),
            tr.joint_tv_coupling_bound(tv_i, active),
            tr.joint_kl(kl_i, active),
            tv_i[0],
            kl_i[0],
        )

    exact, union, coupling, kl, tv0, kl0 = (float(x) for x in quantities(lp, lq, active))
    assert exact == pytest.approx(tv0, abs=1e-6)
    assert union == pytest.approx(tv0, abs=1e-6)
    assert coupling == pytest.approx(tv0, abs=1e-6)
    assert kl == pytest.approx(kl0, abs=1e-6)


# ----------------------------------------------------------------------------- Gaussians


@JIT
def test_gaussian_kl_closed_form(use_jit):
    mp, sp = np.array([0.3, -1.0]), np.array([0.5, 2.0])
    mq, sq = np.array([0.0, 1.0]), np.array([1.0, 1.5])
    expected = np.sum(np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5)
    f = maybe_jit(tr.gaussian_kl, use_jit)
    got = f(*(jnp.asarray(x, jnp.float32) for x in (mp, np.log(sp), mq, np.log(sq))))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # hand value, 1-D: KL(N(0,1) || N(1,1)) = 1/2
    assert float(tr.gaussian_kl(jnp.zeros(1), jnp.zeros(1), jnp.ones(1), jnp.zeros(1))) == pytest.approx(0.5)


@JIT
@pytest.mark.parametrize(
    "mp, sp, mq, sq",
    [(0.0, 1.0, 1.0, 1.0), (0.0, 1.0, 0.0, 2.0), (0.3, 0.5, -1.0, 1.5), (1.0, 2.0, 0.5, 0.3), (0.0, 1.0, 0.1, 1.2)],
)
def test_gaussian_tv_1d_numeric(use_jit, mp, sp, mq, sq):
    xs = np.linspace(-30, 30, 400001)
    pdf = lambda x, m, s: np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))  # noqa: E731
    numeric = 0.5 * np.trapezoid(np.abs(pdf(xs, mp, sp) - pdf(xs, mq, sq)), xs)
    f = maybe_jit(tr.gaussian_tv_1d, use_jit)
    got = float(f(mp, math.log(sp), mq, math.log(sq)))
    assert got == pytest.approx(numeric, abs=2e-6)


def test_gaussian_tv_equal_scale_closed_form_and_methods():
    # equal scales: TV = 2 Phi(|dm| / (2 s)) - 1 ; for dm = 1, s = 1: 0.382924922548
    one, zero = jnp.ones(1), jnp.zeros(1)
    assert float(jgtv(zero, zero, one, zero)) == pytest.approx(0.3829249225, abs=1e-6)
    assert float(jgtv(zero, zero, one, zero, "bound")) == pytest.approx(0.3829249225, abs=1e-6)
    # 3-D, only dimension 0 differs: the joint TV equals the 1-D TV of that dimension, which the
    # bound reproduces exactly and the Monte-Carlo estimate within noise
    r = rng(7)
    mp = jnp.asarray(r.normal(size=3), jnp.float32)
    lsp = jnp.asarray(0.3 * r.normal(size=3), jnp.float32)
    mq, lsq = mp.at[0].add(0.8), lsp.at[0].add(0.4)
    exact = float(jgtv1(mp, lsp, mq, lsq)[0])
    assert float(jgtv(mp, lsp, mq, lsq)) == pytest.approx(exact, abs=1e-6)
    mc = float(jgtv(mp, lsp, mq, lsq, "mc", key=key(0), num_samples=20000))
    assert mc == pytest.approx(exact, abs=5 * 0.5 / math.sqrt(20000))
    # all dimensions differ: max_d TV_d <= MC estimate <= bound (within noise)
    mq2, lsq2 = mp + 0.5, lsp - 0.2
    bound = float(jgtv(mp, lsp, mq2, lsq2))
    mc2 = float(jgtv(mp, lsp, mq2, lsq2, "mc", key=key(1), num_samples=20000))
    lower = float(jnp.max(jgtv1(mp, lsp, mq2, lsq2)))
    assert lower - 0.02 <= mc2 <= bound + 0.02
    with pytest.raises(ValueError, match="allowed"):
        tr.gaussian_tv(mp, lsp, mq, lsq, "exact")
    with pytest.raises(ValueError, match="allowed"):
        tr.gaussian_tv(mp, lsp, mq, lsq, "mc")
    with pytest.raises(ValueError, match="'bogus'"):
        tr.gaussian_tv(mp, lsp, mq, lsq, "bogus")


# 5-D diagonal Gaussians moved by an update of typical size (mean shifts of 0.1-0.4 std, log-std shifts a third
# of that), drawn once from a seeded generator; the reference TV of each pair is a float64 Monte-Carlo value
# over 4e6 draws (standard error about 1e-4, printed by _precise_tv), far below every tolerance used here.
def _gaussian_pair_5d(scale, seed=3):
    r = rng(seed)
    mp, lsp = r.normal(size=5), 0.3 * r.normal(size=5)
    mq, lsq = mp + scale * np.exp(lsp) * r.normal(size=5), lsp + 0.3 * scale * r.normal(size=5)
    return mp, lsp, mq, lsq


def _precise_tv(mp, lsp, mq, lsq, n=4_000_000, seed=0):
    """E_{x~p}[(1 - q(x)/p(x))_+] in float64 numpy, independently of the package: (mean, standard error)."""
    r, total, total_sq = rng(seed), 0.0, 0.0
    for _ in range(n // 500_000):
        z = r.standard_normal((500_000, mp.size))
        x = mp + np.exp(lsp) * z
        log_ratio = np.sum(-0.5 * ((x - mq) / np.exp(lsq)) ** 2 - lsq + 0.5 * z**2 + lsp, axis=1)
        t = np.maximum(0.0, -np.expm1(log_ratio))
        total, total_sq = total + t.sum(), total_sq + (t * t).sum()
    mean = total / n
    return mean, math.sqrt((total_sq / n - mean**2) / n)


@pytest.fixture(scope="module")
def gaussian_5d_cases():
    return [(_gaussian_pair_5d(s), _precise_tv(*_gaussian_pair_5d(s))) for s in (0.1, 0.2, 0.4)]


def test_multidim_gaussian_bound_and_estimate_against_precise_tv(gaussian_5d_cases):
    """Every one of the four upper bounds is >= the reference TV, the reported bound exceeds it by 15-50 %
    (27-29 % on these cases: why the trainer measures instead), the largest per-dimension TV and 1 - BC are
    <= it, and the Monte-Carlo method agrees within 4 of its stated standard errors. Wrong bounds fall
    5-90 % below the reference on every case (Pinsker as sqrt(KL)/2, Hellinger as sqrt(1 - BC), either root
    left out, the largest per-dimension TV), far outside the tolerance of 4 reference standard errors."""
    for (mp, lsp, mq, lsq), (ref, ref_se) in gaussian_5d_cases:
        args = tuple(jnp.asarray(a, jnp.float32) for a in (mp, lsp, mq, lsq))
        tol = 4 * ref_se + 1e-5
        tv_d = np.asarray(jgtv1(*args), np.float64)
        kl = float(tr.gaussian_kl(*args))
        var_p, var_q = np.exp(2 * lsp), np.exp(2 * lsq)
        bc = np.prod(np.sqrt(2 * np.exp(lsp + lsq) / (var_p + var_q)) * np.exp(-(mp - mq) ** 2 / (4 * (var_p + var_q))))
        for name, upper in (("coupling", 1 - np.prod(1 - tv_d)), ("pinsker", math.sqrt(kl / 2)),
                            ("bretagnolle-huber", math.sqrt(1 - math.exp(-kl))), ("hellinger", math.sqrt(1 - bc**2))):
            assert upper >= ref - tol, (name, upper, ref)
        assert tv_d.max() <= ref + tol and 1 - bc <= ref + tol  # lower bounds: one dimension, Hellinger^2
        bound = float(jgtv(*args, "bound"))
        assert 1.15 * ref <= bound <= 1.5 * ref, (bound, ref)
        k = 20_000
        mc = float(jgtv(*args, "mc", key=key(5), num_samples=k))
        assert mc == pytest.approx(ref, abs=4 * 0.5 / math.sqrt(k) + tol)


def test_measure_update_gaussian_measures_multidim_tv(gaussian_5d_cases):
    """The trainer's measurement (tv_method="auto") of 5-D actions is the Monte-Carlo estimate, within 4 of
    its stated standard-error bound 1/(2 sqrt(K n)) of the reference, where the old bound-based column was
    0.016-0.063 above it; ``tv_method="bound"`` still gives the bound."""
    n = 2048  # states; the same pair at every state and for both agents
    for (mp, lsp, mq, lsq), (ref, ref_se) in gaussian_5d_cases:
        om, ols, nm, nls = (jnp.broadcast_to(jnp.asarray(a, jnp.float32), (n, 2, 5)) for a in (mp, lsp, mq, lsq))
        zeros = jnp.zeros((n, 2))
        m = MEASURE_GAUSS(om, ols, nm, nls, None, zeros, zeros, key(1))
        se_bound = 0.5 / math.sqrt(tr.TV_SAMPLES * n)
        np.testing.assert_allclose(m.tv_mean, ref, atol=4 * se_bound + 4 * ref_se)
        assert float(m.sum_tv) == pytest.approx(2 * ref, abs=8 * se_bound + 8 * ref_se)
        bound = float(jgtv(*(jnp.asarray(a, jnp.float32) for a in (mp, lsp, mq, lsq)), "bound"))
        assert bound - ref > 4 * se_bound + 4 * ref_se  # the old column would fail the check above
        mb = MEASURE_GAUSS(om, ols, nm, nls, None, zeros, zeros, key(1), tv_method="bound")
        np.testing.assert_allclose(mb.tv_mean, bound, rtol=1e-5)


MEASURE_GAUSS = jax.jit(tr.measure_update_gaussian, static_argnames=("num_mc_samples", "tv_method", "num_tv_samples"))


# ----------------------------------------------------------------------------- measure_update


def _fake_update(r):
    old = r.normal(size=BATCH + (N_AGENTS, N_ACTIONS)).astype(np.float32)
    new = (old + 0.3 * r.normal(size=old.shape)).astype(np.float32)
    avail = r.random(old.shape) > 0.2
    avail[..., 0] = True
    active = r.random(BATCH + (N_AGENTS,)) > 0.1
    lp = np.asarray(tr.masked_log_softmax(old, avail))
    lq = np.asarray(tr.masked_log_softmax(new, avail))
    acts = np.argmax(np.where(avail, r.random(old.shape), -1), -1)
    slp = np.take_along_axis(lp, acts[..., None], -1)[..., 0]
    slq = np.take_along_axis(lq, acts[..., None], -1)[..., 0]
    return old, new, avail, active, slp, slq


def test_measure_update():
    r = rng(8)
    old, new, avail, active, slp, slq = _fake_update(r)
    m = measure(old, new, avail, active, slp, slq, seed=3)
    n = N_AGENTS
    for name in ("ratio_min", "ratio_max", "dist_ratio_min", "dist_ratio_max", "tv_mean", "kl_mean", "count"):
        assert getattr(m, name).shape == (n,), name
    ratio = np.exp(slq - slp)
    for i in range(n):
        sel = active[..., i]
        assert float(m.ratio_min[i]) == pytest.approx(ratio[..., i][sel].min(), rel=1e-5)
        assert float(m.ratio_max[i]) == pytest.approx(ratio[..., i][sel].max(), rel=1e-5)
        tv_i = np.asarray(jtv(old[..., i, :], new[..., i, :], avail[..., i, :]))
        kl_i = np.asarray(jkl(old[..., i, :], new[..., i, :], avail[..., i, :]))
        assert float(m.tv_mean[i]) == pytest.approx(tv_i[sel].mean(), rel=1e-5)
        assert float(m.kl_mean[i]) == pytest.approx(kl_i[sel].mean(), rel=1e-4)
        assert int(m.count[i]) == sel.sum()
        assert m.dist_ratio_min[i] <= m.ratio_min[i] + 1e-6 and m.ratio_max[i] <= m.dist_ratio_max[i] + 1e-6
    assert float(m.sum_tv) == pytest.approx(float(np.sum(m.tv_mean)), rel=1e-6)
    assert float(m.joint_tv_exact) <= float(m.joint_tv_coupling) + 1e-6 <= float(m.joint_tv_bound) + 2e-6
    assert abs(float(m.joint_tv_mc) - float(m.joint_tv_exact)) < 0.02
    assert float(m.joint_kl) >= 0.0
    jr = np.exp(np.where(active, slq - slp, 0.0).sum(-1))[active.any(-1)]
    assert float(m.joint_ratio_min) == pytest.approx(jr.min(), rel=1e-5)
    assert float(m.joint_ratio_max) == pytest.approx(jr.max(), rel=1e-5)
    row = m.to_row()
    for col in ("ratio_min", "ratio_max", "sum_tv", "joint_tv_bound", "joint_tv_mc", "joint_kl"):
        assert col in row
    for i in range(n):
        for prefix in ("ratio_min", "ratio_max", "tv", "kl"):
            assert f"{prefix}_{i}" in row
    assert row["ratio_min"] == pytest.approx(float(np.min(m.ratio_min)))


def test_measure_update_masks_and_identity():
    r = rng(9)
    old, new, avail, active, slp, slq = _fake_update(r)
    active = np.zeros_like(active)
    active[..., 0] = True  # agents 1, 2 never active -> NaN per agent, excluded from joint quantities
    slq = slq.copy()
    slq[0, 0, 0] = slp[0, 0, 0] + 3.0  # an active outlier is seen ...
    slq[0, 0, 1] = slp[0, 0, 1] + 9.0  # ... an inactive one is not
    m = measure(old, new, avail, active, slp, slq)
    assert float(m.ratio_max[0]) == pytest.approx(math.exp(3.0), rel=1e-5)
    assert np.isnan(float(m.ratio_min[1])) and np.isnan(float(m.tv_mean[2]))
    assert int(m.count[1]) == 0
    assert float(m.sum_tv) == pytest.approx(float(m.tv_mean[0]), rel=1e-6)
    assert float(m.joint_tv_exact) == pytest.approx(float(m.tv_mean[0]), rel=1e-5)
    assert float(m.joint_tv_bound) == pytest.approx(float(m.tv_mean[0]), rel=1e-5)
    assert float(m.joint_ratio_max) == pytest.approx(math.exp(3.0), rel=1e-5)
    # identical policies: all divergences zero, ratios one
    m3 = measure(old, old, avail, np.ones_like(active), slp, slp)
    np.testing.assert_allclose(m3.tv_mean, 0.0, atol=1e-7)
    np.testing.assert_allclose(m3.ratio_max, 1.0)
    assert float(m3.joint_tv_mc) == pytest.approx(0.0, abs=1e-6)
    assert float(m3.joint_kl) == pytest.approx(0.0, abs=1e-6)


def test_measure_update_gaussian():
    r = rng(10)
    batch, n, d = (16,), 2, 1
    om = r.normal(size=batch + (n, d)).astype(np.float32)
    ols = (0.1 * r.normal(size=om.shape)).astype(np.float32)
    nm, nls = om + 0.2, ols + 0.05
    x = om + np.exp(ols) * r.normal(size=om.shape).astype(np.float32)
    slp = np.asarray(jglogp(x, om, ols))
    slq = np.asarray(jglogp(x, nm, nls))
    m = jax.jit(tr.measure_update_gaussian, static_argnames=("num_mc_samples", "tv_method"))(
        om, ols, nm, nls, None, slp, slq, key(0), num_mc_samples=4096
    )
    tv = np.asarray(jgtv1(om, ols, nm, nls))[..., 0]
    np.testing.assert_allclose(m.tv_mean, tv.mean(0), rtol=1e-5)
    exact_joint_lower = tv.max(-1).mean()
    assert exact_joint_lower - 0.03 <= float(m.joint_tv_mc) <= float(m.joint_tv_bound) + 0.03
    assert np.isnan(float(m.joint_tv_exact))
    np.testing.assert_allclose(m.ratio_max, np.exp(slq - slp).max(0), rtol=1e-5)


def test_joint_tv_from_rollout_samples_is_unbiased():
    """The trainer's zero-cost joint-TV estimate (sampled actions of the rollout) matches exact enumeration."""
    key = jax.random.PRNGKey(7)
    k1, k2, k3 = jax.random.split(key, 3)
    old = jax.random.normal(k1, (3, 3))  # 3 agents x 3 actions, one state
    new = old + 0.5 * jax.random.normal(k2, (3, 3))
    exact = float(tr.joint_tv_exact(old, new))
    S = 40000
    acts = jax.random.categorical(k3, old, axis=-1, shape=(S, 3))
    lp_old = jnp.take_along_axis(jax.nn.log_softmax(old)[None].repeat(S, 0), acts[..., None], -1)[..., 0]
    lp_new = jnp.take_along_axis(jax.nn.log_softmax(new)[None].repeat(S, 0), acts[..., None], -1)[..., 0]
    est = tr.joint_tv_from_samples(lp_new - lp_old)
    assert float(est.mean()) == pytest.approx(exact, abs=4 * 0.5 / np.sqrt(S))
    m = tr.measure_update(old[None].repeat(S, 0), new[None].repeat(S, 0), None, None, lp_old, lp_new,
                          num_mc_samples=0, exact_joint_limit=0)
    assert float(m.joint_tv_mc) == pytest.approx(float(est.mean()), rel=1e-5)
