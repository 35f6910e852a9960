"""Li et al.'s (MAMT paper) remaining baselines (issue 11, items 6 and 9): MAMD-OP on the Spread-3 variants,
LOLA-DQN's opponent-shaping correction on hand numbers, and MA-PPO's attention critic.

Cost: small jitted pieces and two tiny training programs (LOLA-DQN and MA-PPO smoke runs)."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.config import Config, ConfigError
from trustmarl.trainers import make_train

JIT = pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])


def _maybe_jit(fn, jit):
    return jax.jit(fn) if jit else fn


def _config(algo, **kw):
    base = dict(algo=algo, env="spread", num_agents=2, num_envs=4, collect_steps=4, gradient_steps=1,
                batch_size=32, learning_starts=32, total_env_steps=4 * 4 * 10, hidden=(16, 16), buffer_size=1000)
    base.update(kw)
    return Config.build(**base)


def _random_batch(t, size, key):
    """A batch of random observations (all actions available, all agents active): the actor losses read only
    these fields, so no env needs compiling."""
    from trustmarl.trainers.off_policy import OffBatch
    A, U, O = t.num_agents, t.num_actions, t.spec.obs_dim
    k_o, k_a = jax.random.split(key)
    obs = jax.random.normal(k_o, (size, A, O))
    action = jax.random.randint(k_a, (size, A), 0, U)
    return OffBatch(obs, jnp.ones((size, A, U), bool), action, jax.nn.one_hot(action, U), jnp.zeros((size, A)),
                    obs, jnp.ones((size, A, U), bool), jnp.zeros((size,)), jnp.ones((size, A), bool))


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


# --------------------------------------------------------------------------------------------------------
# MAMD-OP (App. D): trust regions from the Spread-3 variants' reward groups
# --------------------------------------------------------------------------------------------------------
def test_group_split_hand_numbers():
    from trustmarl.algos.mamd import group_split
    np.testing.assert_array_equal(np.asarray(group_split([0, 1, 2], 1.0)), [np.inf] * 3)  # Sep: MAAC
    np.testing.assert_allclose(np.asarray(group_split([0, 1, 0], 1.0)), [0.5, np.inf, 0.5])  # Mix: i, k share δ
    np.testing.assert_allclose(np.asarray(group_split([0, 0, 0], 0.6)), [0.2, 0.2, 0.2])  # Ful: MAMD's δ/n
    np.testing.assert_allclose(np.asarray(group_split([3, 3, 7, 7], 1.0)), [0.25] * 4)  # two pairs: 4 share δ


def _spread3(variant, **kw):
    return _config("mamd", num_agents=3, env_options=json.dumps({"reward_structure": variant}), **kw)


@pytest.mark.parametrize("variant,expected", [("sep", [np.inf] * 3), ("mix", [0.5, np.inf, 0.5]),
                                              ("ful", [1 / 3] * 3)])
def test_mamd_op_reads_the_spread3_variant(variant, expected):
    from trustmarl.algos.mamd import local_trust_regions
    t = make_train(_spread3(variant, trust_split="reward_groups"))
    np.testing.assert_allclose(np.asarray(local_trust_regions(t)), expected, rtol=1e-6)
    t_eq = make_train(_spread3(variant))  # plain MAMD splits equally whatever the rewards
    np.testing.assert_allclose(np.asarray(local_trust_regions(t_eq)), [1 / 3] * 3, rtol=1e-6)


def test_mamd_op_reductions_on_spread3():
    """MAMD-OP's step on Sep is MAAC's (no KL term), on Ful MAMD's (δ/3 each), on Mix MAAC's for the solo agent
    j = 1 and a KL-constrained one for i, k; compared per agent through the actor gradients on one batch of
    Spread-3 (the actor loss does not read rewards, so one batch serves every variant)."""
    from trustmarl.algos.maac import soft_actor_loss
    from trustmarl.algos.mamd import md_actor_terms, mirror_actor_loss
    t_mix = make_train(_spread3("mix", trust_split="reward_groups"))
    b = _random_batch(t_mix, 32, jax.random.PRNGKey(1))
    lr = t_mix.init_learner(jax.random.PRNGKey(0))
    moved = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(5), p.shape), lr.actor_params)
    lr = lr._replace(extra=lr.extra._replace(old_actor=lr.actor_params))  # π^old ≠ π: the KL term is live
    key = jax.random.PRNGKey(7)
    inf = jnp.inf

    @jax.jit
    def grads(q):  # one program: the critic pass is shared by every loss below
        g_delta = jax.grad(lambda q, d: md_actor_terms(t_mix, q, lr.critic_params, b, key, d, lr.actor_params)[0])
        return (jax.grad(lambda q: soft_actor_loss(t_mix, q, lr, b, key)[0])(q),
                jax.grad(lambda q: mirror_actor_loss(t_mix, q, lr, b, key)[0])(q),
                g_delta(q, jnp.array([inf, inf, inf])), g_delta(q, jnp.array([0.5, inf, 0.5])),
                g_delta(q, jnp.full((3,), 1 / 3)))

    g_maac, g_op_mix, sep, mix, ful = grads(moved)

    def agent(grads, i):  # per-agent networks: slice i of every stacked leaf
        return np.concatenate([np.ravel(x[i]) for x in jax.tree.leaves(grads)])

    np.testing.assert_allclose(_flat(sep), _flat(g_maac), rtol=1e-5, atol=1e-7)  # Sep: MAAC
    np.testing.assert_allclose(_flat(g_op_mix), _flat(mix), rtol=1e-5, atol=1e-7)  # the option reads the env
    np.testing.assert_allclose(agent(mix, 1), agent(g_maac, 1), rtol=1e-5, atol=1e-7)  # Mix, j: unconstrained
    for i in (0, 2):  # Mix, i and k: constrained (δ/2), more loosely than Ful's δ/3
        assert np.abs(agent(mix, i) - agent(g_maac, i)).max() > 1e-3
        assert np.abs(agent(mix, i) - agent(ful, i)).max() > 1e-4


def test_trust_split_errors():
    with pytest.raises(ConfigError, match="reward groups"):
        t = make_train(_config("mamd", env="mpe_spread", trust_split="reward_groups"))
        t.rule.init_extra(t, jax.random.PRNGKey(0), None)  # what init_learner calls after the networks
    with pytest.raises(ConfigError, match="trust_split='reward_groups'"):
        t = make_train(_config("mamt", trust_split="reward_groups"))
        t.rule.init_extra(t, jax.random.PRNGKey(0), None)
    with pytest.raises(ConfigError, match="trust_split"):
        Config.build(algo="mamd", trust_split="optimal")


# --------------------------------------------------------------------------------------------------------
# LOLA-DQN: the opponent-shaping correction on a differentiable game with a known answer
# --------------------------------------------------------------------------------------------------------
def _game(p):
    """V^1(x, y) = x²y + 3y, V^2(x, y) = xy², with θ_1 = x, θ_2 = y stacked as p["w"] = [[x], [y]]."""
    x, y = p["w"][0, 0], p["w"][1, 0]
    return jnp.stack([x * x * y + 3.0 * y, x * y * y])


@JIT
def test_lola_correction_on_a_two_player_game(jit):
    """At (x, y) = (1, 2), η = 0.5:
    agent 1: ∇_y V^1 = x² + 3 = 4 (held fixed), ∇_y V^2 = 2xy → ∇_x[4·2xy] = 8y = 16 → Δ_1 = 0.5·16 = 8;
    agent 2: ∇_x V^2 = y² = 4 (held fixed), ∇_x V^1 = 2xy → ∇_y[4·2xy] = 8x = 8 → Δ_2 = 0.5·8 = 4.
    Without LOLA's stop-gradient agent 1 would get ∇_x[(x² + 3)·2xy] = (6x² + 6)y = 24 → 12."""
    from trustmarl.algos.lola_dqn import lola_correction, shaping_terms
    p = {"w": jnp.array([[1.0], [2.0]])}
    d = _maybe_jit(lambda q: lola_correction(_game, q, 0.5), jit)(p)
    np.testing.assert_allclose(np.asarray(d["w"])[:, 0], [8.0, 4.0], rtol=1e-6)
    # h_i themselves: h_1 = 4·2xy = 16, h_2 = 4·2xy = 16
    np.testing.assert_allclose(np.asarray(shaping_terms(_game, p)), [16.0, 16.0], rtol=1e-6)


@JIT
def test_lola_correction_three_players_sums_over_opponents(jit):
    """V^k = θ_k·(θ_1 + θ_2 + θ_3)/2 + θ_1θ_2θ_3: ∇_{θ_j}V^i = θ_i/2 + Π_{l≠j}θ_l (j ≠ i), ∇_{θ_j}V^j =
    (θ_j + S)/2 + Π_{l≠j}θ_l with S = Σθ. At θ = (1, 2, 3): for i = 1 (index 0)
    j = 2: sg(0.5 + 3) = 3.5 times ∇_{θ_1}[(θ_2 + S)/2 + θ_1θ_3] = 0.5 + 3 = 3.5 → 12.25;
    j = 3: sg(0.5 + 2) = 2.5 times ∇_{θ_1}[(θ_3 + S)/2 + θ_1θ_2] = 0.5 + 2 = 2.5 → 6.25;  Δ_1 = 18.5."""
    from trustmarl.algos.lola_dqn import lola_correction

    def values(p):
        t = p["w"][:, 0]
        return t * jnp.sum(t) / 2 + jnp.prod(t)

    d = _maybe_jit(lambda q: lola_correction(values, q, 1.0), jit)({"w": jnp.array([[1.0], [2.0], [3.0]])})
    # i = 2 (index 1): j = 1: sg(1 + 6)·∇_{θ_2}[(θ_1+S)/2 + θ_2θ_3] = 7·3.5; j = 3: sg(1 + 2)·(0.5 + 1) → 24.5 + 4.5
    # i = 3 (index 2): j = 1: sg(1.5 + 6)·(0.5 + 2) ; j = 2: sg(1.5 + 3)·(0.5 + 1) → 18.75 + 6.75
    np.testing.assert_allclose(np.asarray(d["w"])[:, 0], [18.5, 29.0, 25.5], rtol=1e-6)


@JIT
def test_boltzmann_values_hand_numbers(jit):
    """Two agents, two actions, one observation: π_1 = (0.25, 0.75), π_2 = (0.5, 0.5);
    V^k = Σ_{a1,a2} π_1(a1)π_2(a2) Q_k(a1, a2)."""
    from trustmarl.algos.lola_dqn import boltzmann_values, joint_actions
    joint = jnp.asarray(joint_actions(2, 2))  # (0,0) (0,1) (1,0) (1,1)
    lp = jnp.log(jnp.array([[[0.25, 0.75], [0.5, 0.5]]]))
    q = jnp.array([[[1.0, -1.0], [2.0, 0.0], [3.0, 4.0], [5.0, 8.0]]])  # [B=1, C=4, N=2]
    v = _maybe_jit(boltzmann_values, jit)(lp, q, joint, jnp.ones((1, 2), bool))
    w = np.array([0.125, 0.125, 0.375, 0.375])
    np.testing.assert_allclose(np.asarray(v), [w @ [1, 2, 3, 5], w @ [-1, 0, 4, 8]], rtol=1e-6)


def test_lola_correction_is_the_matching_pennies_contraction():
    """On a matrix game with Boltzmann policies the correction must equal the hand-derived mixed derivative:
    matching pennies with π_1(H) = p = σ(x), π_2(H) = q = σ(y), V^1 = (2p−1)(2q−1) = −V^2; p' = p(1−p),
    q' = q(1−q). ∇_y V^1 = (2p−1)·2q' (held fixed), ∇_y V^2 = −(2p−1)·2q', whose x-derivative is −2p'·2q', so
    Δ_1 = −η·(2p−1)·(2q')²·2p'; symmetrically Δ_2 = −η·(2q−1)·(2p')²·2q'. LOLA pulls both players toward
    the mixed equilibrium p = q = 1/2."""
    from trustmarl.algos.lola_dqn import boltzmann_values, joint_actions, lola_correction
    joint = jnp.asarray(joint_actions(2, 2))
    q_table = jnp.array([[[1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]]])  # H=0, T=1

    def values(p):
        logits = jnp.concatenate([p["w"], jnp.zeros_like(p["w"])], -1)[None]  # [1, 2, 2]
        return boltzmann_values(jax.nn.log_softmax(logits), q_table, joint, jnp.ones((1, 2), bool))

    x, y, eta = 0.7, -0.4, 0.3
    d = np.asarray(jax.jit(lambda q: lola_correction(values, q, eta))({"w": jnp.array([[x], [y]])})["w"])[:, 0]
    s = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    p, q = s(x), s(y)
    dp, dq = p * (1 - p), q * (1 - q)
    np.testing.assert_allclose(d, [-eta * (2 * p - 1) * (2 * dq) ** 2 * 2 * dp,
                                   -eta * (2 * q - 1) * (2 * dp) ** 2 * 2 * dq], rtol=1e-5)
    assert d[0] < 0 < d[1]  # p > 1/2 pushed down, q < 1/2 pushed up


def test_dqn_target_hand_numbers():
    """y^Q = r + γ(1 − d)·T·max_u z̄(o', u): the net outputs z = Q/T."""
    from trustmarl.algos.lola_dqn import dqn_target

    class T:  # the trainer pieces dqn_target reads
        config = Config.build(algo="lola_dqn", lola_temperature=0.5, gamma=0.9)

        @staticmethod
        def logits(params, obs, avail):
            return jnp.where(avail, params * obs, -1e9)

    from trustmarl.trainers.off_policy import OffBatch
    obs = jnp.array([[[1.0, 2.0, 3.0], [4.0, -1.0, 0.0]]])
    avail = jnp.array([[[True, True, False], [True, True, True]]])
    b = OffBatch(obs, avail, None, None, jnp.array([[1.0, -2.0]]), obs, avail, jnp.array([0.0]), None)
    y = dqn_target(T, 2.0, b)
    # agent 0: max over available (2, 4) = 4 → 1 + 0.9·0.5·4 = 2.8; agent 1: max(8, −2, 0) = 8 → −2 + 0.9·4 = 1.6
    np.testing.assert_allclose(np.asarray(y), [[2.8, 1.6]], rtol=1e-6)
    b_end = b._replace(terminated=jnp.array([1.0]))
    np.testing.assert_allclose(np.asarray(dqn_target(T, 2.0, b_end)), [[1.0, -2.0]])


def test_lola_dqn_loss_is_td_minus_the_correction():
    """The Q-networks' gradient is DQN's TD gradient minus LOLA's Δ_i (η = 0: independent DQN exactly), on a
    random Spread-2 batch with a random centralised critic."""
    from trustmarl.algos.lola_dqn import (boltzmann_values, joint_actions, joint_q_table, lola_correction,
                                          lola_dqn_loss)
    t0 = make_train(_config("lola_dqn", lola_eta=0.0))
    t1 = make_train(_config("lola_dqn", lola_eta=0.7))
    lr = t1.init_learner(jax.random.PRNGKey(0))
    b = _random_batch(t1, 16, jax.random.PRNGKey(1))._replace(reward=jax.random.normal(jax.random.PRNGKey(2), (16, 2)))
    key = jax.random.PRNGKey(3)
    joint = jnp.asarray(joint_actions(2, 5))

    @jax.jit
    def pieces(p):
        g0 = jax.grad(lambda q: lola_dqn_loss(t0, q, lr, b, key)[0])(p)
        g1 = jax.grad(lambda q: lola_dqn_loss(t1, q, lr, b, key)[0])(p)
        table = joint_q_table(t1, lr.critic_params, b, joint)
        values = lambda q: boltzmann_values(jax.nn.log_softmax(t1.logits(q, b.obs, b.avail)), table, joint,  # noqa
                                            b.active)
        # independent DQN by hand: Σ_i mean_b (T·z_i(a_i) − r_i − γ·T·max z̄_i(o'_i))²
        T, g = t1.config.lola_temperature, t1.config.gamma

        def td(q):
            y = b.reward + g * T * jnp.max(t1.logits(lr.target_actor, b.next_obs, b.next_avail), -1)
            return jnp.sum(jnp.mean((T * jnp.sum(t1.logits(q, b.obs, b.avail) * b.act, -1) - y) ** 2, 0))

        return g0, g1, jax.grad(td)(p), lola_correction(values, p, 0.7)

    g0, g1, g_td, delta = pieces(lr.actor_params)
    np.testing.assert_allclose(_flat(g0), _flat(g_td), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(_flat(g1), _flat(g_td) - _flat(delta), rtol=1e-4, atol=1e-7)
    assert np.abs(_flat(delta)).max() > 0


def test_lola_dqn_refuses_shared_parameters():
    with pytest.raises(ConfigError, match="share_params"):
        t = make_train(_config("lola_dqn", share_params=True))
        t.rule.init_extra(t, jax.random.PRNGKey(0), None)


def test_lola_dqn_smoke_run():
    """A tiny LOLA-DQN run on Spread-2 (30 iterations, 4 envs): finite, learning switched on after the
    warm-up, every metric of the schema logged, the shaping term live."""
    t = make_train(_config("lola_dqn", batch_size=64, learning_starts=64, total_env_steps=4 * 4 * 30))
    state, m = jax.jit(t)(jax.random.PRNGKey(0))
    m = jax.tree.map(np.asarray, m)
    assert np.all(m["nonfinite"] == 0) and m["learning"][0] == 0 and m["learning"][-1] == 1
    assert set(m) == set(t.metric_schema)
    assert np.all(np.isfinite(m["lola_term"][-1])) and np.abs(m["lola_term"][-1]).max() > 0
    assert np.all(np.isfinite(m["dqn_loss"][m["learning"] == 1]))
    assert state.learner.grad_steps == int(m["learning"].sum())


# --------------------------------------------------------------------------------------------------------
# MA-PPO: MAPPO with a MAAC-style attention critic (critic_input=attention)
# --------------------------------------------------------------------------------------------------------
@JIT
def test_attention_critic_input_layout(jit):
    from trustmarl.seams.critic_inputs import CRITIC_INPUTS, critic_input_dim
    obs = jnp.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])  # [E=1, A=3, O=2]
    x = _maybe_jit(lambda o: CRITIC_INPUTS["attention"](o, None, False), jit)(obs)
    np.testing.assert_array_equal(np.asarray(x[0]), [[1, 2, 3, 4, 5, 6], [3, 4, 1, 2, 5, 6], [5, 6, 1, 2, 3, 4]])
    x_id = CRITIC_INPUTS["attention"](obs, None, True)
    # agent 1: o_1 ⊕ id_1, o_0 ⊕ id_0, o_2 ⊕ id_2
    np.testing.assert_array_equal(np.asarray(x_id[0, 1]), [3, 4, 0, 1, 0, 1, 2, 1, 0, 0, 5, 6, 0, 0, 1])
    assert critic_input_dim("attention", 2, 99, 3, True) == 15 == x_id.shape[-1]


def test_attention_torso_hand_numbers_and_invariances():
    """Two agents: one other, so its attention weight is 1 and y = LeakyReLU(V·e_1) whatever the selector and
    key; out = tanh(W_post(s ⊕ y) + b). Three agents: permuting the others leaves the output unchanged."""
    from trustmarl.networks import AttentionTorso
    net = AttentionTorso(entities=2, heads=2, hidden=(4, 3), activation="tanh")
    x = jnp.array([[0.5, -1.0, 2.0, 0.25]])
    p = net.init(jax.random.PRNGKey(0), x)["params"]
    p = jax.tree.map(lambda a: a + 0.1, p)  # nonzero biases
    out = np.asarray(net.apply({"params": p}, x))
    P = jax.tree.map(np.asarray, p)
    s = np.tanh(x[0, :2] @ P["own_encoder"]["kernel"] + P["own_encoder"]["bias"])
    e = np.tanh(x[0, 2:] @ P["other_encoder"]["kernel"] + P["other_encoder"]["bias"])
    v = e @ P["value"]["kernel"]
    y = np.where(v > 0, v, 0.01 * v)
    want = np.tanh(np.concatenate([s, y]) @ P["post"]["kernel"] + P["post"]["bias"])
    np.testing.assert_allclose(out[0], want, rtol=1e-5, atol=1e-6)

    net3 = AttentionTorso(entities=3, heads=2, hidden=(4, 3), activation="relu")
    x3 = jax.random.normal(jax.random.PRNGKey(1), (5, 3, 2))
    p3 = net3.init(jax.random.PRNGKey(2), x3.reshape(5, 6))
    f = jax.jit(lambda z: net3.apply(p3, z.reshape(5, 6)))
    np.testing.assert_allclose(np.asarray(f(x3)), np.asarray(f(x3[:, [0, 2, 1]])), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(f(x3)) - np.asarray(f(x3[:, [1, 0, 2]]))).max() > 1e-4  # own entity is special


def test_ma_ppo_is_mappo_with_the_attention_critic_input():
    from trustmarl.algos import ALGORITHMS
    from trustmarl.trainers.on_policy import OnPolicyTrainer
    a = Config.build(algo="ma_ppo", env="spread", num_agents=2)
    table6 = {k: v for k, v in ALGORITHMS["ma_ppo"].config_defaults.items()}
    b = Config.build(algo="mappo", env="spread", num_agents=2, **table6)
    assert {k: v for k, v in vars(a).items() if k != "algo"} == {k: v for k, v in vars(b).items() if k != "algo"}
    assert a.critic_input == "attention" and a.num_envs * a.rollout_length >= 4096 and a.huber_delta == 10.0
    assert ALGORITHMS["ma_ppo"].family == "on_policy"
    t = make_train(Config.build(algo="ma_ppo", env="spread", num_agents=2, num_envs=2, rollout_length=8,
                                total_env_steps=16, hidden=(8, 8), num_minibatches=1))
    assert isinstance(t, OnPolicyTrainer) and t.critic_in_dim == 2 * (t.spec.obs_dim + 2)
    with pytest.raises(ConfigError, match="attention_heads=3"):
        make_train(Config.build(algo="ma_ppo", env="spread", num_agents=2, hidden=(8, 8), attention_heads=3))


def test_ma_ppo_smoke_run():
    """A tiny MA-PPO run on Spread-2 (3 updates): finite, and the critic's value loss falls."""
    c = Config.build(algo="ma_ppo", env="spread", num_agents=2, num_envs=4, rollout_length=25,
                     total_env_steps=4 * 25 * 6, hidden=(16, 16), num_minibatches=1, update_epochs=2,
                     measure_trust_region=False)
    t = make_train(c)
    state, m = jax.jit(t)(jax.random.PRNGKey(0))
    m = jax.tree.map(np.asarray, m)
    assert np.all(m["nonfinite"] == 0)
    assert np.all(np.isfinite(m["value_loss"])) and m["value_loss"][-1] < m["value_loss"][0]
