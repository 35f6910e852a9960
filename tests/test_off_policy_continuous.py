"""Continuous actions in the off-policy family (issue 11, item 3) and the Table 10 preset (item 8).

Hand-computed numbers for the action heads (jit and no-jit), tiny runs of MADDPG's deterministic actor and
MAMD's squashed-Gaussian actor on MPE spread with continuous actions, MADDPG on PettingZoo multiwalker through
the host path, the reduction of continuous MAMD to MAAC, and the li2023-table10 plan and table.
"""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.config import Config, ConfigError
from trustmarl.offpolicy import heads as H

JIT = pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])


def _maybe_jit(fn, jit):
    return jax.jit(fn) if jit else fn


# ----------------------------------------------------------------------------------------------------------
# heads on hand numbers
# ----------------------------------------------------------------------------------------------------------
@JIT
def test_squashed_gaussian_log_prob_hand_numbers(jit):
    # μ = (0.5, 0), σ = (0.5, 1), ξ = (1, −2): u = (1, −2), a = tanh(u)
    head = H.SquashedGaussianHead(2)
    out = jnp.array([0.5, 0.0, math.log(0.5), 0.0])
    xi = jnp.array([1.0, -2.0])
    a, logp = _maybe_jit(head.squash, jit)(out, xi)
    np.testing.assert_allclose(a, [math.tanh(1.0), math.tanh(-2.0)], rtol=1e-6)
    # log N(u; μ, σ) = −ξ²/2 − log σ − ½ log 2π per dimension; the tanh correction −log(1 − tanh(u)²)
    log_n = (-0.5 - math.log(0.5) - 0.5 * math.log(2 * math.pi)) + (-2.0 - 0.0 - 0.5 * math.log(2 * math.pi))
    corr = math.log(1 - math.tanh(1.0) ** 2) + math.log(1 - math.tanh(-2.0) ** 2)
    np.testing.assert_allclose(float(logp), log_n - corr, rtol=1e-5)
    # the density of a stored action gives the same number (atanh back to u)
    np.testing.assert_allclose(float(_maybe_jit(head.log_prob, jit)(out, a)), log_n - corr, rtol=1e-4)
    # the stable form of log(1 − tanh²u) stays finite where tanh(u) rounds to 1: log 4 − 2u for large u
    np.testing.assert_allclose(float(H.tanh_log_det(jnp.array(20.0))), math.log(4.0) - 40.0, rtol=1e-6)
    # log σ is clipped to [−20, 2]
    _, ls = head.split(jnp.array([0.0, 0.0, 5.0, -30.0]))
    np.testing.assert_allclose(ls, [2.0, -20.0])


@JIT
def test_continuous_heads_kl_bounds_and_env_box(jit):
    g = H.SquashedGaussianHead(1)
    # KL[N(0, 1) ‖ N(1, 2²)] = log 2 + (1 + 1)/8 − ½ (the tanh is a bijection: the squashed KL is the same)
    kl = _maybe_jit(g.kl, jit)(jnp.array([0.0, 0.0]), jnp.array([1.0, math.log(2.0)]))
    np.testing.assert_allclose(float(kl), math.log(2.0) + 0.25 - 0.5, rtol=1e-6)
    d = H.DeterministicTanhHead(2, sigma=0.5)
    z = jnp.array([[30.0, -30.0], [0.3, -0.1]])
    a, _ = _maybe_jit(lambda z, n: d.act(z, n, False), jit)(z, jnp.array([[5.0, -5.0], [0.2, 0.4]]))
    assert float(jnp.max(jnp.abs(a))) <= 1.0  # clipped into the box whatever the noise
    np.testing.assert_allclose(a[1], [math.tanh(0.3) + 0.1, math.tanh(-0.1) + 0.2], rtol=1e-6)
    np.testing.assert_allclose(d.act(z, None, True)[0], jnp.tanh(z))
    # ‖tanh p − tanh q‖² / (2σ²)
    np.testing.assert_allclose(float(d.kl(jnp.array([0.0, 0.0]), jnp.array([0.5, 0.0]))),
                               math.tanh(0.5) ** 2 / 0.5, rtol=1e-6)
    # [−1, 1] onto the env's box [0, 1] (MPE's continuous actions)
    np.testing.assert_allclose(d.env_action(jnp.array([-1.0, 0.0, 1.0]), 0.0, 1.0), [0.0, 0.5, 1.0])
    # MADDPG penalises the continuous actor's tanh output, as maddpg-pytorch does
    np.testing.assert_allclose(d.regularised(jnp.array([30.0])), [1.0])


def test_categorical_head_is_the_discrete_path():
    c = H.CategoricalHead(3)
    z = jnp.array([[0.0, 1.0, -1.0]])
    key = jax.random.PRNGKey(0)
    act, logp = c.sample(z, key)
    g = jax.random.gumbel(key, (1, 3))
    np.testing.assert_array_equal(act, jax.nn.one_hot(jnp.argmax(z + g, -1), 3))
    np.testing.assert_allclose(logp, jnp.sum(jax.nn.log_softmax(z) * act, -1), rtol=1e-6)
    with pytest.raises(ConfigError, match="algo=other has no continuous-action actor"):
        H.make_head(False, 4, None, 0.1, "other")


# ----------------------------------------------------------------------------------------------------------
# trainers with continuous actions
# ----------------------------------------------------------------------------------------------------------
TINY = {"env": "mpe_spread", "num_agents": 2, "env_options": '{"continuous": true}', "total_env_steps": 320,
        "num_envs": 4, "collect_steps": 4, "gradient_steps": 1, "batch_size": 32, "learning_starts": 32,
        "hidden": (16, 16), "attention_heads": 2}


@pytest.fixture(scope="module")
def maddpg_run():
    from trustmarl.trainers import make_train
    t = make_train(Config.build({"algo": "maddpg", **TINY}))
    state, m = jax.jit(t)(jax.random.PRNGKey(0))
    return t, state, m


def test_maddpg_continuous_shapes_bounds_and_learning_steps(maddpg_run):
    t, state, m = maddpg_run
    assert isinstance(t.head, H.DeterministicTanhHead) and t.num_actions == 5
    A, D, E = 2, 5, 4
    obs = state.runner.timestep.obs
    noise = t.draw_noise(jax.random.PRNGKey(1), (E,))
    assert noise.shape == (E, A, D)
    pol = t.act(state.learner.actor_params, None, obs, state.runner.timestep.avail, None, 10.0 * noise)
    assert pol.action.shape == (E, A, D) and float(jnp.max(jnp.abs(pol.action))) <= 1.0
    env_a = t.env_action(pol.action)
    assert float(env_a.min()) >= 0.0 and float(env_a.max()) <= 1.0  # MPE's Box(0, 1)
    stored = state.buffer.experience.action
    assert stored.dtype == jnp.float32 and stored.shape[-2:] == (A, D)
    assert float(jnp.max(jnp.abs(stored))) <= 1.0 and float(jnp.std(stored)) > 0.0
    assert np.all(np.asarray(m["nonfinite"]) == 0)
    learning = np.asarray(m["learning"]) > 0
    assert learning.sum() >= 10
    assert np.all(np.isfinite(np.asarray(m["critic_loss"])[learning]))
    assert np.all(np.asarray(m["kl_iteration"])[learning] > 0)  # the actor moved


def test_mamd_continuous_reduces_to_maac():
    """Continuous MAMD's actor gradient with δ → ∞ (1/δ_i = 0) is MAAC's reparameterised one exactly; with a
    finite δ the KL term to a different old copy changes it. (MAMT's tiny run below runs this actor step.)"""
    from trustmarl.algos.maac import soft_actor_loss, soft_actor_terms
    from trustmarl.trainers import make_train
    from trustmarl.trainers.off_policy import OffBatch
    t = make_train(Config.build({"algo": "mamd", **TINY}))
    assert isinstance(t.head, H.SquashedGaussianHead) and t.head.out_dim == 10
    learner = t.init_learner(jax.random.PRNGKey(0))
    k = jax.random.split(jax.random.PRNGKey(1), 4)
    B, A, O, D = 8, 2, t.spec.obs_dim, 5
    act = jax.random.uniform(k[1], (B, A, D), minval=-1.0, maxval=1.0)
    b = OffBatch(jax.random.normal(k[0], (B, A, O)), jnp.ones((B, A, D), bool), act, act, jnp.zeros((B, A)),
                 jax.random.normal(k[2], (B, A, O)), jnp.ones((B, A, D), bool), jnp.zeros((B,)), jnp.ones((B, A), bool))
    old = jax.tree.map(lambda x: x + 0.3, learner.actor_params)  # an old copy that differs
    key = k[3]

    @jax.jit
    def md(inv_delta):
        return jax.grad(lambda p: soft_actor_terms(t, p, learner.critic_params, b, key, inv_delta, old)[0])(
            learner.actor_params)

    g_maac = jax.jit(jax.grad(lambda p: soft_actor_loss(t, p, learner, b, key)[0]))(learner.actor_params)
    for x, y in zip(jax.tree.leaves(md(jnp.zeros(2))), jax.tree.leaves(g_maac)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    moved = [np.abs(np.asarray(x - y)).max() for x, y in zip(jax.tree.leaves(md(jnp.ones(2))),
                                                              jax.tree.leaves(g_maac))]
    assert max(moved) > 1e-6  # with a finite δ the KL term pulls toward the old copy
    # MAMT-PPO is discrete-only: MAMD's and MAMT's learner states refuse it (one line) before any network exists
    from types import SimpleNamespace

    from trustmarl.algos.mamd import init_mirror
    from trustmarl.algos.mamt import init_mamt
    ppo = SimpleNamespace(config=t.config.replace(policy_update="ppo"), head=t.head, num_agents=2, env=t.env)
    for init in (init_mirror, init_mamt):
        with pytest.raises(ConfigError, match="policy_update=ppo .* continuous actions"):
            init(ppo, jax.random.PRNGKey(0), learner.actor_params)


def test_mamt_continuous_runs_within_its_budget():
    """Continuous MAMT: opponent models with Gaussian predictions, eq. 6 with the Gaussians' KL, eq. 8 through a
    reparameterised sample; a tiny run stays finite and Σ_i δ_i ≤ δ."""
    from trustmarl.trainers import make_train
    t = make_train(Config.build({"algo": "mamt", **TINY, "total_env_steps": 160, "delta_delay": 1}))
    assert isinstance(t.head, H.SquashedGaussianHead)
    state, m = jax.jit(t)(jax.random.PRNGKey(0))
    assert np.all(np.asarray(m["nonfinite"]) == 0)
    learning = np.asarray(m["learning"]) > 0
    assert learning.sum() >= 3
    delta, d_ns = np.asarray(m["delta"])[learning], np.asarray(m["d_ns"])[learning]
    assert np.all(delta > 0) and np.all(delta.sum(-1) <= 1.0 + 1e-5)
    assert np.all(np.isfinite(d_ns)) and np.all(d_ns >= 0)
    assert np.all(np.isfinite(np.asarray(m["model_loss"])[learning]))
    assert np.all(np.isfinite(np.asarray(m["kl_old"])[learning]))
    rho0 = jnp.full((2,), 0.0) + float(np.log(np.expm1(0.5)))
    assert float(jnp.max(jnp.abs(state.learner.extra.rho - rho0))) > 0  # eq. 8 moved the trust regions


def test_maddpg_multiwalker_host_path(tmp_path):
    pytest.importorskip("pettingzoo.sisl")
    from trustmarl import runtime as run
    c = Config.build({"algo": "maddpg", "env": "pz_multiwalker", "env_options": '{"max_cycles": 20}',
                      "total_env_steps": 96, "num_envs": 2, "collect_steps": 8, "gradient_steps": 1,
                      "batch_size": 16, "learning_starts": 16, "hidden": (16, 16), "progress": False,
                      "out_dir": str(tmp_path), "run_name": "mw"})
    s = run.train(c)
    rows = (tmp_path / "mw" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(",")))
    assert len(rows) - 1 == 6 and float(last["learning"]) == 1.0
    assert math.isfinite(float(last["critic_loss"])) and float(last["nonfinite"]) == 0
    assert s["env_steps"] == 96


# ----------------------------------------------------------------------------------------------------------
# the Table 10 preset
# ----------------------------------------------------------------------------------------------------------
def test_table10_plan():
    from trustmarl.analysis import reproduce
    plan = reproduce.plan("li2023-table10", budget=0.001, seeds=3)
    algos = {"maac", "maddpg", "mamd", "mamt", "ma_ppo", "lola_dqn"}
    assert {c["algo"] for c in plan.values()} == algos
    assert {c["env"] for c in plan.values()} == {"spread", "pz_multiwalker", "rover_tower", "pursuit"}
    # JAX envs vmap the seeds in one run; the host path gets one run per seed
    spread = plan["mamt_spread2"]
    assert spread["num_seeds"] == 3 and spread["num_agents"] == 2 and spread["total_env_steps"] == 1250
    mw = [c for c in plan.values() if c["env"] == "pz_multiwalker"]
    assert len(mw) == 15 and {c["seed"] for c in mw} == {0, 1, 2} and {c["num_seeds"] for c in mw} == {1}
    assert plan["maddpg_multiwalker3_seed2"]["total_env_steps"] == 25_000  # 50,000 episodes × 500 × 0.001
    # Table 10's other baselines where the paper has them: LOLA on Spread only, MA-PPO on all four tasks
    assert sorted(k for k in plan if k.startswith("lola_dqn")) == ["lola_dqn_spread2"]
    assert sorted(k for k in plan if k.startswith("ma_ppo")) == [
        "ma_ppo_multiwalker3_seed0", "ma_ppo_multiwalker3_seed1", "ma_ppo_multiwalker3_seed2",
        "ma_ppo_pursuit8", "ma_ppo_rovertower8", "ma_ppo_spread2"]
    for name, c in plan.items():
        built = Config.build(c)
        assert built.lr == 1e-3 and built.num_envs == 12  # Tables 3, 6 and 7 (each algorithm's defaults)
        if c["algo"] == "ma_ppo":  # Table 6: an on-policy run with the attention critic, 12 × 342 steps
            assert built.rollout_length == 342 and built.critic_input == "attention" and built.huber_delta == 10.0
        else:
            assert built.batch_size == 1024  # Tables 3 and 7
    # 1,250 steps at budget 0.001 are less than one MA-PPO update: one update of 12 × 342 = 4,104 steps
    assert plan["ma_ppo_spread2"]["total_env_steps"] == 4104 and plan["lola_dqn_spread2"]["total_env_steps"] == 1250
    only = reproduce.plan("li2023-table10", seeds=2, only=["*_spread2", "mamt_rover*"])
    assert sorted(only) == ["lola_dqn_spread2", "ma_ppo_spread2", "maac_spread2", "maddpg_spread2", "mamd_spread2",
                            "mamt_rovertower8", "mamt_spread2"]
    # --set keys reach the runs whose family reads them; a key no run reads is refused
    mixed = reproduce.plan("li2023-table10", seeds=1, only=["maac_spread2", "ma_ppo_spread2"],
                           overrides={"collect_steps": 4, "rollout_length": 64, "hidden": (64, 64)})
    assert mixed["maac_spread2"]["collect_steps"] == 4 and "rollout_length" not in mixed["maac_spread2"]
    assert mixed["ma_ppo_spread2"]["rollout_length"] == 64 and "collect_steps" not in mixed["ma_ppo_spread2"]
    assert mixed["maac_spread2"]["hidden"] == mixed["ma_ppo_spread2"]["hidden"] == (64, 64)
    with pytest.raises(ValueError, match="rollout_length: read by no run"):
        reproduce.plan("li2023-table10", only=["maac_spread2"], overrides={"rollout_length": 64})
    with pytest.raises(ValueError, match="did you mean collect_steps"):  # a misspelt key keeps its hint
        reproduce.plan("li2023-table10", only=["maac_spread2"], overrides={"colect_steps": 4})
    with pytest.raises(ValueError, match="matches no run"):
        reproduce.plan("li2023-table10", only=["nothing*"])
    from trustmarl.analysis.tables import parse_window
    assert str(parse_window(reproduce.EXPERIMENTS["li2023-table10"].table["window"])) == "tail:0.1"
    with pytest.raises(ValueError, match="tail:F"):
        parse_window("tail:1.5")


def test_table10_table_from_runs(tmp_path, monkeypatch):
    """The table: mean ± std over seeds of each seed's mean return over the episodes that ended in its last 10 %
    of iterations (iterations without an episode end log NaN and still count as iterations)."""
    import csv

    from trustmarl import runtime as run
    from trustmarl.analysis import reproduce

    def fake_train(config, run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), default=str))
        bump = {"maddpg": 0.0, "mamt": 10.0}[config.algo]
        with (run_dir / "metrics.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["seed", "update", "env_steps", "return_mean"])
            for s in range(config.num_seeds):
                for u in range(40):  # return u + 2s + bump at even u: updates 36..39 average 37 + 2s + bump
                    w.writerow([s, u, (u + 1) * 96, u + 2 * s + bump if u % 2 == 0 else "nan"])
        return {"final_return": 0.0, "final_win_rate": float("nan"), "env_steps_per_s": 1.0}

    monkeypatch.setattr(run, "train", fake_train)
    md = reproduce.reproduce("li2023-table10", tmp_path, seeds=2, only=["maddpg_spread2", "mamt_spread2"],
                             overrides={"total_env_steps": 96 * 40})
    text = md.read_text()
    assert md.name == "li2023-table10.md" and "tail:0.1 updates" in text
    # seeds score 37 and 39: mean 38, population std 1.0
    assert "| maddpg | 38.00 ± 1.00 |" in text and "| mamt | **48.00 ± 1.00** |" in text
