"""The off-policy family (issue 11): its math on hand-computed numbers, the attention critic's masking, the
replay buffer's transitions, MAMD's reduction to MAAC, MAMT's trust-region budget, and a short learning run.

Cost: one compiled MADDPG training program (module-scoped, ~25 s on a CPU core) plus small jitted pieces."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.config import Config, ConfigError
from trustmarl.offpolicy import functional as F
from trustmarl.offpolicy.networks import AttentionCritic
from trustmarl.trainers import make_train

JIT = pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])


def _maybe_jit(fn, jit):
    return jax.jit(fn) if jit else fn


# --------------------------------------------------------------------------------------------------------
# pure math on hand numbers
# --------------------------------------------------------------------------------------------------------
@JIT
def test_soft_update_hand_numbers(jit):
    target = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(4.0)}
    online = {"w": jnp.array([3.0, 2.0]), "b": jnp.array(0.0)}
    out = _maybe_jit(lambda t, o: F.soft_update(t, o, 0.25), jit)(target, online)
    # 0.75·1 + 0.25·3 = 1.5 ; 0.75·(−2) + 0.25·2 = −1 ; 0.75·4 = 3
    np.testing.assert_allclose(out["w"], [1.5, -1.0], rtol=1e-6)
    np.testing.assert_allclose(out["b"], 3.0, rtol=1e-6)


@JIT
def test_counterfactual_baseline_hand_numbers(jit):
    q_all = jnp.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 5.0]])
    probs = jnp.array([[0.2, 0.3, 0.5], [0.5, 0.5, 0.0]])
    b = _maybe_jit(F.counterfactual_baseline, jit)(q_all, probs)
    np.testing.assert_allclose(b, [0.2 + 0.6 + 1.5, -0.5], rtol=1e-6)


@JIT
def test_gumbel_softmax_straight_through(jit):
    logits = jnp.array([[0.5, -1.0, 2.0, 0.0]])
    key = jax.random.PRNGKey(3)
    fn = _maybe_jit(lambda z: F.gumbel_softmax(z, key, 1.0, hard=True), jit)
    y = fn(logits)
    g = jax.random.gumbel(key, logits.shape)
    soft = jax.nn.softmax(logits + g)
    # forward: the one-hot of argmax(z + g) (an exact categorical sample)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(jax.nn.one_hot(jnp.argmax(logits + g, -1), 4)))
    # backward: the relaxed sample's gradient (straight-through)
    w = jnp.array([1.0, 2.0, -1.0, 0.5])
    g_st = jax.grad(lambda z: jnp.sum(fn(z) * w))(logits)
    g_soft = jax.grad(lambda z: jnp.sum(jax.nn.softmax(z + g) * w))(logits)
    np.testing.assert_allclose(g_st, g_soft, rtol=1e-5, atol=1e-7)
    assert np.abs(np.asarray(g_st)).sum() > 0
    np.testing.assert_allclose(jnp.sum(soft), 1.0, rtol=1e-6)


@JIT
def test_coordination_coefficients_hand_numbers(jit):
    # agent 0: |Q_0(a_\1) − Q_0(a)| = 0, |Q_0(a_\2) − Q_0(a)| = ln 3 → softmax over j ≠ 0 = (1/4, 3/4)
    q = jnp.array([1.0, 0.0, 2.0])
    q_wo = jnp.array([[9.0, 1.0, 1.0 + math.log(3.0)],
                      [0.0, 9.0, 0.0],
                      [2.0 - math.log(3.0), 2.0, 9.0]])
    fn = _maybe_jit(lambda a, b: F.coordination_coefficients(a, b, 0.3), jit)
    c = np.asarray(fn(q, q_wo))
    np.testing.assert_allclose(c, [[0.0, 0.0, 0.75], [0.5, 0.0, 0.5], [0.75, 0.0, 0.0]], rtol=1e-5, atol=1e-7)
    # σ = 0 keeps the whole softmax; rows over j ≠ i sum to 1, the diagonal is 0
    c0 = np.asarray(F.coordination_coefficients(q, q_wo, 0.0))
    np.testing.assert_allclose(c0.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(c0[0], [0.0, 0.25, 0.75], rtol=1e-5)
    # a masked (inactive) partner gets no weight and the rest renormalise
    mask = jnp.array([[True, True, False], [True, True, True], [True, True, True]])
    np.testing.assert_allclose(np.asarray(F.coordination_coefficients(q, q_wo, 0.0, mask))[0], [0.0, 1.0, 0.0])


@JIT
def test_nonstationarity_hand_numbers(jit):
    # KL[(1/2, 1/2) ‖ (1/4, 3/4)] = ½ ln 2 + ½ ln(2/3) = ½ ln(4/3)
    kl = 0.5 * math.log(4.0 / 3.0)
    pred = jnp.log(jnp.array([[[0.5, 0.5], [0.5, 0.5]], [[0.25, 0.75], [0.25, 0.75]]]))  # [A(i), A(j), U]
    pol = jnp.log(jnp.array([[0.5, 0.5], [0.25, 0.75]]))
    coord = jnp.array([[0.0, 0.75], [1.0, 0.0]])
    d = np.asarray(_maybe_jit(lambda c, p, q: F.nonstationarity(c, p, q, 10.0), jit)(coord, pred, pol))
    # agent 0 predicts agent 1 as (½, ½), agent 1 plays (¼, ¾): 0.75·KL ; agent 1 predicts agent 0 as (¼, ¾),
    # agent 0 plays (½, ½): KL[(¼, ¾) ‖ (½, ½)] = ¼ ln ½ + ¾ ln (3/2)
    kl_back = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    np.testing.assert_allclose(d, [0.75 * kl, kl_back], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(F.nonstationarity(coord, pred, pol, 0.1)), [0.1, 0.1])  # Π_ns


@JIT
def test_weighted_policy_divergence_hand_numbers(jit):
    """MAMT-WS: D_i = Π(1/n·Σ_{j≠i} C_ij KL[π_j^old ‖ π_j])."""
    old = jnp.log(jnp.array([[0.5, 0.5], [0.25, 0.75], [0.5, 0.5]]))
    new = jnp.log(jnp.array([[0.25, 0.75], [0.25, 0.75], [0.5, 0.5]]))
    coord = jnp.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.2, 0.8, 0.0]])
    kl0 = 0.5 * math.log(4.0 / 3.0)  # KL[(½, ½) ‖ (¼, ¾)]; agents 1 and 2 did not move
    d = np.asarray(_maybe_jit(lambda c, o, n: F.weighted_policy_divergence(c, o, n, 10.0), jit)(coord, old, new))
    np.testing.assert_allclose(d, [0.0, kl0 / 3, 0.2 * kl0 / 3], rtol=1e-5, atol=1e-8)


def test_ablation_coordinations():
    np.testing.assert_allclose(np.asarray(F.fixed_coordination(3)), (1 - np.eye(3)) / 2)
    r = np.asarray(F.random_coordination(jax.random.PRNGKey(0), (5,), 4))
    assert r.shape == (5, 4, 4)
    np.testing.assert_allclose(r.sum(-1), 1.0, rtol=1e-6)
    assert np.all(np.diagonal(r, axis1=-2, axis2=-1) == 0)


def test_reward_stats_match_numpy():
    r = np.random.default_rng(0).normal(size=(3, 7, 2)).astype(np.float32) * [1.0, 5.0] + [0.0, -3.0]
    s = F.reward_stats_init(2)
    for chunk in r:
        s = F.reward_stats_update(s, jnp.asarray(chunk))
    flat = r.reshape(-1, 2)
    np.testing.assert_allclose(s.mean, flat.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sqrt(s.m2 / s.count), flat.std(0), rtol=1e-5)
    np.testing.assert_allclose(F.normalise_rewards(s, jnp.asarray(flat)), (flat - flat.mean(0)) / flat.std(0),
                               rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------------------
# MAMT's trust-region budget
# --------------------------------------------------------------------------------------------------------
def test_local_trust_regions_stay_within_budget():
    total = 1.0
    for seed in range(20):
        rho = jax.random.normal(jax.random.PRNGKey(seed), (4,)) * 3.0
        d = np.asarray(F.split_budget(rho, total, 0.01))
        assert d.sum() <= total * (1 + 1e-6) and np.all(d > 0) and np.all(d <= total)
    # under the budget the split is softplus(ρ) itself
    rho = jnp.array([F.inverse_softplus(0.1), F.inverse_softplus(0.3)])
    np.testing.assert_allclose(F.split_budget(rho, 1.0, 0.01), [0.1, 0.3], rtol=1e-5)
    # the ReLU penalty is 0 under the budget and pushes every ρ_i down above it
    assert float(F.budget_penalty(rho, 1.0)) == 0.0
    big = jnp.array([2.0, 1.0])
    g = np.asarray(jax.grad(lambda r: F.budget_penalty(r, 1.0))(big))
    np.testing.assert_allclose(g, np.asarray(jax.nn.sigmoid(big)), rtol=1e-6)


# --------------------------------------------------------------------------------------------------------
# attention critic
# --------------------------------------------------------------------------------------------------------
def test_attention_critic_shapes_and_masking():
    B, A, O, U, H, K = 5, 3, 6, 4, 16, 4
    net = AttentionCritic(U, H, K, A)
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    obs = jax.random.normal(k[0], (B, A, O))
    act = jax.nn.one_hot(jax.random.randint(k[1], (B, A), 0, U), U)
    attend = F.off_diagonal(A) & jnp.ones((B, 1, A), bool)
    params = net.init(k[2], obs, act, attend)
    apply = jax.jit(net.apply)
    q, logits = apply(params, obs, act, attend)
    assert q.shape == (B, A, U) and logits.shape == (B, K, A, A)
    assert np.all(np.asarray(logits)[:, :, np.arange(A), np.arange(A)] == 0)  # nobody attends to itself
    # Q_0 does not depend on agent 0's own action (it indexes the output instead)
    act2 = act.at[:, 0].set(jnp.roll(act[:, 0], 1, -1))
    q2, _ = apply(params, obs, act2, attend)
    np.testing.assert_allclose(q2[:, 0], q[:, 0], rtol=1e-6)
    assert not np.allclose(q2[:, 1], q[:, 1])  # ... but agent 1's does
    # agent 2 masked out of everyone's attention: its observation no longer reaches Q_0, Q_1
    masked = attend & jnp.array([True, True, False])
    obs3 = obs.at[:, 2].add(5.0)
    qa, _ = apply(params, obs, act, masked)
    qb, _ = apply(params, obs3, act, masked)
    np.testing.assert_allclose(qa[:, :2], qb[:, :2], rtol=1e-6)
    qc, _ = apply(params, obs3, act, attend)
    assert not np.allclose(qc[:, :2], q[:, :2])
    # an agent with nobody to attend to gets x_i = 0: Q_i equals the head on its own encoding alone
    alone = jnp.zeros((B, A, A), bool)
    qz, lz = apply(params, obs, act, alone)
    assert np.all(np.isfinite(np.asarray(qz))) and float(jnp.abs(lz).max()) == 0.0


# --------------------------------------------------------------------------------------------------------
# trainer pieces (no full training program compiled)
# --------------------------------------------------------------------------------------------------------
def _config(algo, **kw):
    base = dict(algo=algo, env="spread", num_agents=2, num_envs=4, collect_steps=4, gradient_steps=1,
                batch_size=32, learning_starts=32, total_env_steps=4 * 4 * 10, hidden=(16, 16), buffer_size=1000)
    base.update(kw)
    return Config.build(**base)


def test_off_policy_config_keys_are_family_checked():
    with pytest.raises(ConfigError, match="rollout_length"):
        Config.build(algo="maac", rollout_length=64)
    with pytest.raises(ConfigError, match="tau"):
        Config.build(algo="mappo", tau=0.1)
    c = Config.build(algo="maac", num_envs=12, collect_steps=8)
    assert c.derived(2).steps_per_update == 96
    with pytest.raises(ConfigError, match="network='gru'"):
        make_train(_config("maac", network="gru"))


@pytest.fixture(scope="module")
def spread_batch():
    """One MADDPG trainer's first collection on Spread-2 and a batch from it (shared: every algorithm's
    trainer on this env has the same buffer layout)."""
    t = make_train(_config("maddpg"))
    state = jax.jit(t.init)(jax.random.PRNGKey(0))
    runner, buf, count, trace = jax.jit(t.collect)(state, jax.random.PRNGKey(1))
    stats = F.reward_stats_update(F.reward_stats_init(2), trace.reward)
    b = jax.jit(t.sample)(buf, stats, jax.random.PRNGKey(2))
    return t, state, buf, count, b


def test_replay_stores_consecutive_transitions(spread_batch):
    t, state, buf, count, b = spread_batch
    E, T, A, O = 4, 4, 2, t.spec.obs_dim
    assert int(count) == E * T
    exp = jax.tree.map(lambda x: np.asarray(x[0, : E * T]), buf.experience)
    assert exp.obs.shape == (E * T, A, O) and exp.action.shape == (E * T, A) and exp.next_avail.shape[-1] == 5
    # items are added env by env at each step: item t·E + e; o' of step t is o of step t+1 (no episode ended)
    np.testing.assert_array_equal(exp.next_obs[: E * (T - 1)], exp.obs[E:])
    np.testing.assert_array_equal(exp.obs[:E], np.asarray(state.runner.timestep.obs))
    assert b.obs.shape == (32, A, O) and b.act.shape == (32, A, 5) and b.terminated.shape == (32,)
    np.testing.assert_allclose(np.asarray(b.act).sum(-1), 1.0)
    # every sampled transition is one of the stored ones
    stored = {tuple(np.round(o.ravel(), 5)) for o in exp.obs}
    assert all(tuple(np.round(o.ravel(), 5)) in stored for o in np.asarray(b.obs))


def test_mamd_with_unbounded_trust_region_is_maac(spread_batch):
    """Reduction: δ → ∞ removes MAMD's KL term; the actor gradient is MAAC's soft actor-critic one."""
    from trustmarl.algos.maac import soft_actor_loss
    from trustmarl.algos.mamd import mirror_actor_loss
    b = spread_batch[4]
    t_inf = make_train(_config("mamd", trust_region=1e30))
    t_one = make_train(_config("mamd", trust_region=0.05))
    lr = t_inf.init_learner(jax.random.PRNGKey(0))
    # move the policy away from its old copy, so that the KL term is not zero
    moved = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(5), p.shape), lr.actor_params)
    key = jax.random.PRNGKey(7)

    @jax.jit
    def grads(p):
        g = lambda fn, t: jax.grad(lambda q: fn(t, q, lr, b, key)[0])(p)  # noqa: E731
        return g(soft_actor_loss, t_inf), g(mirror_actor_loss, t_inf), g(mirror_actor_loss, t_one), \
            mirror_actor_loss(t_one, p, lr, b, key)[1]

    g_maac, g_inf, g_one, m = grads(moved)
    flat = lambda g: np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)])  # noqa: E731
    np.testing.assert_allclose(flat(g_inf), flat(g_maac), rtol=1e-5, atol=1e-7)
    assert np.abs(flat(g_one) - flat(g_maac)).max() > 1e-3  # a finite trust region does change the step
    assert np.all(np.asarray(m["kl_old"]) > 0)


def test_ppo_step_at_the_old_policy_is_the_counterfactual_policy_gradient(spread_batch):
    """MAMT-PPO's step with π = π^old (ratio 1, inside any clip) and α → 0 is MAAC's actor gradient with α → 0:
    −E[∇log π_i(a_i)·(Q_i − b_i)], the same sampled actions (one key) and the same baseline."""
    from trustmarl.algos.maac import soft_actor_terms
    from trustmarl.algos.mamd import ppo_actor_terms
    b = spread_batch[4]
    t = make_train(_config("mamt", policy_update="ppo", reward_scale=1e30))
    lr = t.init_learner(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(3)
    delta = jnp.full((2,), 0.1)

    @jax.jit
    def grads(p):
        g_ppo = jax.grad(lambda q: ppo_actor_terms(t, q, lr.critic_params, b, key, delta, p)[0])(p)
        g_pg = jax.grad(lambda q: soft_actor_terms(t, q, lr.critic_params, b, key)[0])(p)
        return g_ppo, g_pg

    g_ppo, g_pg = grads(lr.actor_params)
    flat = lambda g: np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)])  # noqa: E731
    np.testing.assert_allclose(flat(g_ppo), flat(g_pg), rtol=1e-4, atol=1e-6)
    assert np.abs(flat(g_pg)).max() > 1e-4


def test_mamt_before_step_keeps_budget_and_reports(spread_batch):
    b = spread_batch[4]
    t = make_train(_config("mamt", trust_region=0.5, delta_delay=1))
    lr0 = t.init_learner(jax.random.PRNGKey(0))
    step = jax.jit(lambda lr, k: t.rule.before_step(t, lr, b, k))
    np.testing.assert_allclose(np.asarray(F.split_budget(lr0.extra.rho, 0.5, 0.01)), [0.25, 0.25], rtol=1e-5)
    lr = lr0
    for i in range(5):
        lr, m = step(lr, jax.random.PRNGKey(10 + i))
        lr = lr._replace(grad_steps=lr.grad_steps + 1)
        assert float(np.sum(m["delta"])) <= 0.5 * (1 + 1e-6)
    assert not np.allclose(np.asarray(lr.extra.rho), np.asarray(lr0.extra.rho))  # δ moved (eq. 8)
    np.testing.assert_allclose(float(m["coord_mean"]), 1.0, rtol=1e-6)  # two agents: C_01 = C_10 = 1
    assert np.all(np.asarray(m["d_ns"]) >= 0) and np.isfinite(float(m["trd_loss"]))


def test_continuous_env_is_refused_without_a_continuous_actor(monkeypatch):
    from trustmarl.envs.core import EnvSpec

    class Box:
        spec = EnvSpec("box", ("a", "b"), 3, 6, 2, False, 10, False, (3, 3), (2, 2))

        def reset(self, key):  # pragma: no cover - never reached
            raise AssertionError

        step = reset

    # a rule without a continuous head is refused (the four algorithms have one: tests/test_off_policy_continuous.py)
    from trustmarl.offpolicy.rules import RULES
    monkeypatch.setitem(RULES, "maddpg", RULES["maddpg"]._replace(continuous=None))
    with pytest.raises(ConfigError, match="algo=maddpg has no continuous-action actor; allowed with continuous "
                                          "actions: maac"):
        make_train(_config("maddpg"), env=Box())


# --------------------------------------------------------------------------------------------------------
# learning (one compiled program)
# --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def maddpg_run():
    c = Config.build(algo="maddpg", env="spread", num_agents=2, num_envs=8, collect_steps=4, gradient_steps=1,
                     batch_size=256, learning_starts=512, total_env_steps=30_000, hidden=(64, 64), seed=0)
    t = make_train(c)
    state, metrics = jax.jit(t)(jax.random.PRNGKey(0))
    return t, state, jax.tree.map(np.asarray, metrics)


def test_maddpg_learns_spread_two_agents(maddpg_run):
    """Spread, 2 agents, seed 0, 30k env steps (937 iterations, 922 gradient steps): the uniform random
    policy scores −21.3 per episode (256 episodes); the trained greedy policy must reach −18.5 (measured: see docs)."""
    from trustmarl.evaluation import evaluate
    t, state, m = maddpg_run
    r = m["return_mean"]
    first, last = np.nanmean(r[:90]), np.nanmean(r[-90:])
    assert last > first + 3.0, (first, last)
    ev = evaluate(t, t.policy_params(state), jax.random.PRNGKey(1), episodes=32)
    assert ev["return_mean"] > -18.5, ev
    assert np.all(m["nonfinite"] == 0)
    assert m["learning"][0] == 0 and m["learning"][-1] == 1  # warm-up until learning_starts transitions
    assert set(m) == set(t.metric_schema)


def test_host_path_collects_and_learns():
    """The host path (PettingZoo Pursuit in-process) goes through the same learning phase."""
    import functools

    from pettingzoo.sisl import pursuit_v5

    from trustmarl.runtime.loop import host_train
    fn = functools.partial(pursuit_v5.parallel_env, max_cycles=10, n_evaders=5, n_pursuers=2)
    c = Config.build(algo="maddpg", env="pursuit", num_envs=2, collect_steps=5, gradient_steps=1, batch_size=16,
                     learning_starts=16, total_env_steps=2 * 5 * 3, hidden=(16, 16), progress=False)
    m = host_train(c, fn, async_=False)["metrics"]
    np.testing.assert_array_equal(m["learning"], [0.0, 1.0, 1.0])  # 10 transitions < 16, then 20, 30
    assert np.isnan(m["critic_loss"][0]) and np.all(np.isfinite(m["critic_loss"][1:]))
    assert m["episodes"].sum() == 2 and np.all(m["nonfinite"] == 0)


def test_diagnostics_figure_from_a_run_folder(tmp_path):
    """Figures 3-5's quantities from metrics.csv: seed means per env step, the panels the run has."""
    from trustmarl.offpolicy.figures import plot_diagnostics, read_metrics
    rows = ["seed,update,env_steps,kl_old_0,kl_old_1,delta_0,delta_1,coord_mean,coord_var,return_mean",
            "0,1,96,0.1,0.2,0.5,0.5,1,0,-20", "1,1,96,0.3,0.4,0.4,0.6,1,0,-22", "0,2,192,0.2,0.1,0.3,0.6,0.9,0.01,"]
    (tmp_path / "metrics.csv").write_text("\n".join(rows) + "\n")
    m = read_metrics(tmp_path)
    np.testing.assert_allclose(m["env_steps"], [96, 192])
    np.testing.assert_allclose(m["kl_old_0"], [0.2, 0.2])
    np.testing.assert_allclose(m["delta_1"], [0.55, 0.6])
    png = plot_diagnostics(tmp_path)
    assert png.is_file() and png.stat().st_size > 1000
    (tmp_path / "metrics.csv").write_text("seed,update,env_steps,return_mean\n0,1,96,-20\n")
    with pytest.raises(ValueError, match="no MAMD/MAMT diagnostics"):
        plot_diagnostics(tmp_path)
