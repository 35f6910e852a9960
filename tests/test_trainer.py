"""System tests of the trainer: surrogate on hand numbers, reductions, determinism, smoke runs, learning."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.config import Config
from trustmarl.trainers import Batch, make_train

from conftest import tiny


def _batch(trainer, logp_old, adv, action, logits_new_bias=0.0):
    """A one-state-per-agent batch whose new policy is the network's own output."""
    A = trainer.num_agents
    U = trainer.spec.num_actions
    x = jnp.zeros((1, 1, A, trainer.actor_in_dim))
    return Batch(actor_in=x, critic_in=jnp.zeros((1, 1, A, trainer.critic_in_dim)),
                 avail=jnp.ones((1, 1, A, U), bool), action=action.reshape(1, 1, A),
                 logp=logp_old.reshape(1, 1, A), dist=jnp.zeros((1, 1, A, U)), active=jnp.ones((1, 1, A), bool),
                 reset=jnp.ones((1, 1), bool), value=jnp.zeros((1, 1, A)), target=jnp.zeros((1, 1, A)),
                 adv=adv.reshape(1, 1, A), adv_joint=adv.mean().reshape(1, 1),
                 actor_h=jnp.zeros((1, A, trainer.hidden_size)), critic_h=jnp.zeros((1, A, trainer.hidden_size)))


def _loss(trainer):
    """The actor loss of the simultaneous order (every agent, factor 1 on every sample)."""
    return lambda params, b: trainer.actor_loss(params, b)


@pytest.mark.parametrize("jit", [False, True])
def test_clipped_surrogate_on_hand_numbers(jit):
    trainer = make_train(tiny(algo="ippo", env="mpe_spread", num_agents=2, ent_coef=0.0, clip_eps=0.2))
    params = trainer.init(jax.random.PRNGKey(0)).learner.actor_params
    # zero input, near-uniform head: log pi(a) ≈ log(1/5). Choose old log-probs to set the ratios.
    b0 = _batch(trainer, jnp.zeros(2), jnp.ones(2), jnp.zeros(2, int))
    f = jax.jit(_loss(trainer)) if jit else _loss(trainer)
    _, m = f(params, b0)
    logp_new = jnp.log(m["ratio_mean"])  # with logp_old = 0 the ratio is pi_new(a)
    # agent 0: ratio 1.5 with A=+1 -> clipped to 1.2; agent 1: ratio 0.5 with A=-2 -> clipped .8*-2=-1.6
    logp_old = logp_new - jnp.log(jnp.array([1.5, 0.5]))
    adv = jnp.array([1.0, -2.0])
    loss, m = f(params, _batch(trainer, logp_old, adv, jnp.zeros(2, int)))
    np.testing.assert_allclose(m["ratio_mean"], [1.5, 0.5], rtol=1e-5)
    assert float(loss) == pytest.approx(-(1.2 * 1.0 + 0.8 * -2.0) / 2, rel=1e-5)
    np.testing.assert_allclose(m["clip_frac"], [1.0, 1.0])
    # inside the bound: ratio 1.1, A=1 and ratio .9, A=1 -> plain r*A
    logp_old = logp_new - jnp.log(jnp.array([1.1, 0.9]))
    loss, m = f(params, _batch(trainer, logp_old, jnp.ones(2), jnp.zeros(2, int)))
    assert float(loss) == pytest.approx(-(1.1 + 0.9) / 2, rel=1e-5)
    np.testing.assert_allclose(m["clip_frac"], [0.0, 0.0])
    # approx KL per agent: (r - 1) - log r
    np.testing.assert_allclose(m["approx_kl"], [0.1 - np.log(1.1), -0.1 - np.log(0.9)], rtol=1e-4)


def test_joint_ratio_clips_the_product():
    trainer = make_train(tiny(algo="jrppo", env="mpe_spread", num_agents=2, ent_coef=0.0, clip_eps=0.2,
                              adv_norm=False))
    params = trainer.init(jax.random.PRNGKey(0)).learner.actor_params
    _, m = _loss(trainer)(params, _batch(trainer, jnp.zeros(2), jnp.ones(2), jnp.zeros(2, int)))
    logp_new = jnp.log(m["ratio_mean"])
    # individual ratios 1.1 and 1.15 are inside [0.8, 1.2] but their product 1.265 is clipped to 1.2
    logp_old = logp_new - jnp.log(jnp.array([1.1, 1.15]))
    loss, m = _loss(trainer)(params, _batch(trainer, logp_old, jnp.ones(2), jnp.zeros(2, int)))
    assert float(loss) == pytest.approx(-1.2, rel=1e-5)
    np.testing.assert_allclose(m["clip_frac"], [1.0, 1.0])


def test_one_agent_jrppo_equals_mappo_and_gradients_match():
    """Reduction: with one agent the joint ratio is the agent's ratio, so JR-PPO is (MA)PPO."""
    kw = dict(env="mpe_spread", num_agents=1, seed=3)
    a = make_train(tiny(algo="mappo", **kw))
    b = make_train(tiny(algo="jrppo", **kw))
    sa, ma = jax.jit(a)(jax.random.PRNGKey(3))
    sb, mb = jax.jit(b)(jax.random.PRNGKey(3))
    for x, y in zip(jax.tree.leaves(sa.learner.actor_params), jax.tree.leaves(sb.learner.actor_params)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ma["policy_loss"], mb["policy_loss"], rtol=1e-4, atol=1e-6)


def test_determinism_same_seed_same_metrics(trained_tiny):
    trainer, state, metrics = trained_tiny
    state2, metrics2 = jax.jit(trainer)(jax.random.PRNGKey(0))
    for k in metrics:
        np.testing.assert_array_equal(np.asarray(metrics[k]), np.asarray(metrics2[k]), err_msg=k)
    state3, metrics3 = jax.jit(trainer)(jax.random.PRNGKey(1))
    assert not np.array_equal(np.asarray(metrics["value_loss"]), np.asarray(metrics3["value_loss"]))


def test_metrics_contract_per_agent(trained_tiny):
    trainer, state, m = trained_tiny
    n, A = trainer.num_updates, trainer.num_agents
    for k in ("ratio_min", "ratio_mean", "ratio_max", "clip_frac", "approx_kl", "entropy", "explained_variance"):
        assert m[k].shape == (n, A), k
    assert bool((m["ratio_min"] <= m["ratio_mean"]).all() and (m["ratio_mean"] <= m["ratio_max"]).all())
    E = trainer.config.update_epochs
    assert m["tr/tv_mean"].shape == (n, E, A) and m["tr/sum_tv"].shape == (n, E)
    np.testing.assert_allclose(m["tr/sum_tv"], m["tr/tv_mean"].sum(-1), rtol=1e-5)


def test_vmap_over_seeds_matches_single_runs(trained_tiny):
    trainer, _, metrics = trained_tiny
    keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
    _, mv = jax.jit(jax.vmap(trainer))(keys)
    np.testing.assert_allclose(mv["value_loss"][0], metrics["value_loss"], rtol=1e-4, atol=1e-6)


SMOKE = [
    dict(algo="ippo", env="mpe_spread"),
    dict(algo="mappo", env="mpe_spread"),
    dict(algo="jrppo", env="mpe_spread"),
    dict(algo="ippo", env="smax", map="3m", network="gru"),
    dict(algo="mappo", env="smax", map="3m", network="gru"),
    dict(algo="jrppo", env="smax", map="3m", network="ff"),
    dict(algo="mappo", env="mpe_spread", network="gru", share_params=False),
    dict(algo="ippo", env="mpe_spread", env_options='{"continuous": true}', share_params=False),
    dict(algo="mappo", env="spread", env_options='{"reward_structure": "mix"}', num_agents=3),
    dict(algo="jrppo", env="pursuit", env_options='{"n_pursuers": 3, "n_evaders": 4, "max_cycles": 20}'),
    dict(algo="ippo", env="rover_tower", share_params=False),
    dict(algo="mappo", env="rover_tower", share_params=True),
]


@pytest.mark.parametrize("kw", SMOKE, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_smoke_every_algorithm_env_network(kw):
    trainer = make_train(tiny(**{"num_agents": 2, **kw}))
    state, m = jax.jit(trainer)(jax.random.PRNGKey(0))
    assert int(state.update) == trainer.num_updates
    for k in ("value_loss", "policy_loss", "entropy", "tr/sum_tv"):
        assert np.isfinite(np.asarray(m[k])).all(), k
    if kw["env"] == "smax":
        assert "win_rate" in m


def test_per_agent_parameters_are_stacked():
    trainer = make_train(tiny(algo="ippo", env="mpe_spread", num_agents=3, share_params=False))
    params = trainer.init(jax.random.PRNGKey(0)).learner.actor_params
    assert all(x.shape[0] == 3 for x in jax.tree.leaves(params))


def test_centralised_critic_sees_other_agents():
    """Changing the part of agent 0's global state that holds agent 1's observation changes agent 0's value."""
    trainer = make_train(tiny(algo="mappo", env="mpe_spread", num_agents=2))
    st = trainer.init(jax.random.PRNGKey(0))
    from trustmarl.networks import apply_agents
    ts = st.runner.timestep
    s0 = trainer.critic_in(ts.obs, ts.state)
    O = trainer.spec.obs_dim  # concat_obs layout: own observation, then the others', then the id
    s1 = s0.at[:, 0, O:2 * O].add(1.0)
    v = lambda x: apply_agents(trainer.critic, st.learner.critic_params, st.runner.critic_h, x[None],
                               jnp.ones((1, 4), bool))[1]
    assert not np.allclose(v(s0)[0, 0, 0], v(s1)[0, 0, 0])
    ippo = make_train(tiny(algo="ippo", env="mpe_spread", num_agents=2))
    assert ippo.critic_in_dim == ippo.spec.obs_dim  # local critic: own observation only


def test_one_agents_step_touches_only_that_agents_parameters():
    """Update-order seam: with per-agent stacks an actor step that selects agent 1 changes agent 1's
    parameters and optimiser state and leaves agents 0 and 2 bit-identical (own Adam state, own clip)."""
    trainer = make_train(tiny(algo="mappo", env="mpe_spread", num_agents=3, share_params=False))
    st = trainer.init(jax.random.PRNGKey(0))
    rng, k_roll, k_mb = jax.random.split(st.rng, 3)
    runner, traj = trainer.rollout(st.learner, st.runner, k_roll)
    values, targets, adv, _, _ = trainer.evaluate(st.learner, st.runner, runner, traj)
    mb = jax.tree.map(lambda x: x[0], trainer.minibatches(trainer.make_batch(traj, values, targets, adv,
                                                                             st.runner), k_mb))
    only1 = jnp.array([False, True, False])
    new, _ = jax.jit(trainer.actor_step)(st.learner, mb, only1)
    for before, after in zip(jax.tree.leaves((st.learner.actor_params, st.learner.actor_opt)),
                             jax.tree.leaves((new.actor_params, new.actor_opt))):
        np.testing.assert_array_equal(np.asarray(before)[[0, 2]], np.asarray(after)[[0, 2]])
    moved = [not np.array_equal(np.asarray(b)[1], np.asarray(a)[1])
             for b, a in zip(jax.tree.leaves(st.learner.actor_params), jax.tree.leaves(new.actor_params))]
    assert all(moved)
    # a factor of 0 on every sample removes the surrogate's gradient: only the entropy term moves agent 1
    zero, _ = jax.jit(trainer.actor_step)(st.learner, mb._replace(factor=jnp.zeros_like(mb.adv)), only1)
    assert not np.array_equal(np.asarray(jax.tree.leaves(zero.actor_params)[0]),
                              np.asarray(jax.tree.leaves(new.actor_params)[0]))


def test_learning_rate_counts_updates_not_optimiser_steps():
    """The schedule reads the learner's update count: after U updates it has counted U whatever the
    number of epochs and minibatches."""
    trainer = make_train(tiny(algo="ippo", env="mpe_spread", num_agents=2, update_epochs=3, num_minibatches=2))
    state, _ = jax.jit(trainer)(jax.random.PRNGKey(0))
    assert int(state.learner.updates) == trainer.num_updates == 3


@pytest.mark.slow
def test_mappo_learns_two_agent_spread():
    """Learning test with a threshold: MAPPO on 2-agent simple_spread improves the team return.

    Four seeds vmapped, 160k env steps each. The first 10 updates score -21.4, -21.9, -21.3, -20.7 per episode
    (team mean reward summed over 26 steps). One seed in a few collapses at this learning rate (seen
    2026-11-30 with 6 seeds: seed 1 fell to -23.3 with trustmarl's initialiser and to -29.5 with flax's,
    while the others reached -14.1 to -18.2), so the test asks the seed mean to improve by at least 3 and
    three seeds of four by at least 1.5. (It used to run in a fresh process with a retry because the vmapped
    LAPACK initialiser deadlocked now and then, docs/known-issues.md; the initialiser no longer calls LAPACK.)
    """
    cfg = Config.build(dict(algo="mappo", env="mpe_spread", num_agents=2, total_env_steps=160_000, num_envs=32,
                            rollout_length=25, update_epochs=5, num_minibatches=1, lr=7e-4,
                            measure_trust_region=False, progress=False))
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    _, m = jax.jit(jax.vmap(make_train(cfg)))(keys)
    r = np.asarray(m["return_mean"])
    first, last = np.nanmean(r[:, :10], 1), np.nanmean(r[:, -10:], 1)
    assert (last - first).mean() > 3.0, (first, last)
    assert ((last - first) > 1.5).sum() >= 3, (first, last)


def test_minibatch_measurement_lags_epoch_end_by_one_step():
    """With one minibatch per epoch, the in-loss measurement at epoch k+1 sees exactly the policy left by
    epoch k, so it equals the epoch-end measurement of epoch k; at epoch 1 it sees the behaviour policy (TV 0).
    Measuring does not change training."""
    kw = dict(algo="mappo", env="mpe_spread", num_agents=2, num_minibatches=1, update_epochs=3,
              total_env_steps=4 * 8)
    a = make_train(tiny(measure_at="minibatch", **kw))
    b = make_train(tiny(measure_at="epoch_end", **kw))
    sa, ma = jax.jit(a)(jax.random.PRNGKey(5))
    sb, mb = jax.jit(b)(jax.random.PRNGKey(5))
    np.testing.assert_allclose(ma["tr/tv_mean"][:, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(ma["tr/tv_mean"][:, 1:], mb["tr/tv_mean"][:, :-1], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(ma["tr/ratio_max"][:, 1:], mb["tr/ratio_max"][:, :-1], rtol=1e-5)
    for x, y in zip(jax.tree.leaves(sa.learner.actor_params), jax.tree.leaves(sb.learner.actor_params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
