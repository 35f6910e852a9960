"""B2MAPO (Zhang et al. 2024, §3–4; trustmarl.seams.dag): hand numbers for the upper layer's pieces (eq. 5,
Plackett–Luce, the DAG and its topological levels, the PPO loss, the T-step return) and eq. 13, the reduction
to the simultaneous update when the DAG has one level (with the upper layer's learning and π_ind's evaluation)."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl import losses as L
from trustmarl.evaluation import evaluate
from trustmarl.networks import MASKED_LOGIT
from trustmarl.seams.dag import (PrecedingParams, action_features, attention_weights, dag_edges, dag_ppo_loss,
                                 derived_kl, has_preceding, level_groups, plackett_luce_logp, preceding_block,
                                 preceding_mask, preceding_value_loss, sample_by_batches, sample_plackett_luce,
                                 threshold_graph, topological_levels, window_return)
from trustmarl.trainers import make_train

from conftest import tiny

JIT = [False, True]


def _maybe_jit(f, jit):
    return jax.jit(f) if jit else f


def _edges(pairs, n):
    e = np.zeros((n, n), bool)
    for j, i in pairs:
        e[j, i] = True  # j -> i
    return jnp.asarray(e)


@pytest.mark.parametrize("jit", JIT)
def test_topological_levels_of_hand_made_graphs(jit):
    levels = _maybe_jit(topological_levels, jit)
    cases = [
        ([(0, 1), (1, 2)], 3, [0, 1, 2]),  # chain
        ([(0, 1), (0, 2), (1, 3), (2, 3)], 4, [0, 1, 1, 2]),  # diamond: 1 and 2 share a level
        ([], 3, [0, 0, 0]),  # no dependency: one batch
        ([(0, 1), (1, 3), (0, 3)], 4, [0, 1, 0, 2]),  # longest path decides agent 3; agent 2 is free
        ([(3, 0), (2, 0), (1, 2)], 4, [2, 0, 1, 0]),  # edges against the index order
    ]
    for pairs, n, want in cases:
        np.testing.assert_array_equal(np.asarray(levels(_edges(pairs, n))), want, err_msg=str(pairs))


@pytest.mark.parametrize("jit", JIT)
def test_level_groups_cap_and_dag_edges_follow_the_ordering(jit):
    groups = jax.jit(level_groups, static_argnums=1) if jit else level_groups
    np.testing.assert_array_equal(np.asarray(groups(jnp.array([0, 1, 2, 3]), 2)),
                                  [[1, 0, 0, 0], [0, 1, 1, 1]])  # levels >= K-1 share the last batch
    np.testing.assert_array_equal(np.asarray(groups(jnp.array([0, 0, 0]), 3)),
                                  [[1, 1, 1], [0, 0, 0], [0, 0, 0]])  # unreached levels are empty
    # 0 and 1 depend on each other, 2 depends on 0; the ordering [1, 0, 2] keeps 1 -> 0 and 0 -> 2
    graph = jnp.array([[0.0, 0.4, 0.0], [0.5, 0.0, 0.0], [0.3, 0.0, 0.0]])
    edges = _maybe_jit(dag_edges, jit)(graph, jnp.array([1, 0, 2]))
    np.testing.assert_array_equal(np.asarray(edges), np.asarray(_edges([(1, 0), (0, 2)], 3)))
    np.testing.assert_array_equal(np.asarray(topological_levels(edges)), [1, 0, 2])
    # the reverse ordering keeps 0 -> 1 only (2 -> 0 is not a dependency)
    edges = dag_edges(graph, jnp.array([2, 0, 1]))
    np.testing.assert_array_equal(np.asarray(edges), np.asarray(_edges([(0, 1)], 3)))


@pytest.mark.parametrize("jit", JIT)
def test_plackett_luce_log_probability_and_sampling(jit):
    """exp(s) = [1, 2, 3]: P(2, 0, 1) = 3/6 · 1/3 · 2/2 = 1/6; the six orderings sum to 1; Gumbel-top-k draws
    agent k first with probability exp(s_k)/6."""
    s = jnp.log(jnp.array([1.0, 2.0, 3.0]))
    logp = _maybe_jit(plackett_luce_logp, jit)
    assert float(logp(s, jnp.array([2, 0, 1]))) == pytest.approx(math.log(1 / 6), abs=1e-6)
    assert float(logp(s, jnp.array([0, 1, 2]))) == pytest.approx(math.log(1 / 6 * 2 / 5), abs=1e-6)
    total = sum(math.exp(float(logp(s, jnp.array(p)))) for p in itertools.permutations(range(3)))
    assert total == pytest.approx(1.0, abs=1e-6)
    draws = jax.jit(jax.vmap(sample_plackett_luce, in_axes=(0, None)))(jax.random.split(jax.random.PRNGKey(0), 6000), s)
    first = np.bincount(np.asarray(draws[:, 0]), minlength=3) / 6000
    np.testing.assert_allclose(first, [1 / 6, 2 / 6, 3 / 6], atol=0.025)
    assert all(sorted(d) == [0, 1, 2] for d in np.asarray(draws[:50]).tolist())


@pytest.mark.parametrize("jit", JIT)
def test_eq5_attention_graph_and_threshold(jit):
    """q = [1, 2], k = [0, 1], d_k = 1: row 0 softmax([0, 1]) = [0.2689, 0.7311], row 1 softmax([0, 2]) =
    [0.1192, 0.8808]; the diagonal is zeroed; δ = 0.2 removes 0.1192."""
    q, k = jnp.array([[1.0], [2.0]]), jnp.array([[0.0], [1.0]])
    g = _maybe_jit(attention_weights, jit)(q, k)
    e = math.e
    np.testing.assert_allclose(np.asarray(g), [[0.0, e / (1 + e)], [1 / (1 + e * e), 0.0]], atol=1e-6)
    np.testing.assert_allclose(np.asarray(_maybe_jit(threshold_graph, jit)(g, 0.2)), [[0.0, e / (1 + e)], [0, 0]],
                               atol=1e-6)


@pytest.mark.parametrize("jit", JIT)
def test_upper_layer_ppo_loss_and_window_return(jit):
    """Sr = 1.5, Â = 2, ε = 0.2: min(3, 2.4) = 2.4; KL term 0.1·(0.5 − ln 1.5) = 0.0094535."""
    loss = _maybe_jit(dag_ppo_loss, jit)(jnp.log(1.5), jnp.asarray(0.0), jnp.asarray(2.0), 0.2, 0.1)
    assert float(loss) == pytest.approx(-2.4 + 0.1 * (0.5 - math.log(1.5)), abs=1e-6)
    loss = dag_ppo_loss(jnp.log(0.5), jnp.asarray(0.0), jnp.asarray(-1.0), 0.2, 0.0)  # min(-0.5, -0.8)
    assert float(loss) == pytest.approx(0.8, abs=1e-6)
    # rewards [T=2, E=2, A=2]; γ = 0.5: env 0 r̄ = [2, 2] → 3, env 1 r̄ = [0, 4] → 2; mean 2.5
    r = jnp.array([[[1.0, 3.0], [0.0, 0.0]], [[2.0, 2.0], [4.0, 4.0]]])
    assert float(_maybe_jit(window_return, jit)(r, 0.5)) == pytest.approx(2.5)


@pytest.mark.parametrize("jit", JIT)
def test_eq13_derived_kl_on_hand_numbers(jit):
    """Agent 0: p = [0.5, 0.5, -], q = [0.25, 0.75, -] (third action unavailable): KL = 0.5 ln 2 + 0.5 ln(2/3)
    = 0.143841; agent 1 inactive (left out); Gaussian N(0, 1) ‖ N(1, 1): 0.5."""
    f = jax.jit(derived_kl, static_argnums=4) if jit else derived_kl
    p = jnp.log(jnp.array([[0.5, 0.5, 1.0], [0.9, 0.05, 0.05]]))
    q = jnp.log(jnp.array([[0.25, 0.75, 1.0], [0.1, 0.1, 0.8]]))
    avail = jnp.array([[True, True, False], [True, True, True]])
    p, q = jnp.where(avail, p, MASKED_LOGIT), jnp.where(avail, q, MASKED_LOGIT)
    kl = f(p, q, avail, jnp.array([True, False]), True)
    assert float(kl) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), abs=1e-6)
    both = float(f(p, q, avail, jnp.array([True, True]), True))
    second = 0.9 * math.log(9) + 0.05 * math.log(0.5) + 0.05 * math.log(0.05 / 0.8)
    assert both == pytest.approx((0.143841 + second) / 2, abs=1e-5)
    out_p = jnp.array([[0.0, 0.0]])  # mean ⊕ log-std of one agent, one dimension
    out_q = jnp.array([[1.0, 0.0]])
    assert float(f(out_p, out_q, None, jnp.array([True]), False)) == pytest.approx(0.5, abs=1e-6)


# the MAPPO tricks spelled out (as in test_sequential_orders) so that the runs differ only in the order
TRICKS = dict(lr=5e-4, critic_input="global", value_norm=True, value_clip=True, huber_delta=10.0, adv_norm=True,
              agent_id=True, use_active_masks=True, layer_norm_input=True, share_params=True)


def _run(**kw):
    trainer = make_train(tiny(**{"env": "mpe_spread", "num_agents": 3, "measure_trust_region": False, **kw}))
    state, metrics = jax.jit(trainer)(jax.random.PRNGKey(0))
    return trainer, state, metrics


def test_one_level_dag_is_the_simultaneous_update():
    """δ = 0.9 leaves no edge (attention weights of 3 agents start near 1/3), so the DAG has one level: B2MAPO's
    lower layer is then MAPPO's simultaneous update (the two empty batches are skipped, the factor and the
    trace are 1), while its upper layer and π_ind still learn."""
    _, ref, _ = _run(algo="mappo", **TRICKS)
    trainer, b2, m = _run(algo="b2mapo", dag_threshold=0.9, num_batches=3, ind_epochs=2, **TRICKS)
    assert trainer.config.preceding_actions  # B2MAPO's default: π reads the preceding batches' actions
    assert np.asarray(m["dag_batches"]).tolist() == [1.0, 1.0, 1.0]
    assert np.asarray(m["dag_edges"]).tolist() == [0.0, 0.0, 0.0]
    pi = b2.learner.actor_params
    assert isinstance(pi, PrecedingParams)
    # one batch: nobody has predecessors, the action block is zero, π and V are MAPPO's actor and critic and their
    # shift terms never move (zero gradients, zero Adam steps; V(s, 0)'s extra loss term has no entries)
    v = b2.learner.critic_params
    assert trainer.config.preceding_values and isinstance(v, PrecedingParams)  # V reads them too (default)
    for x, y in zip(jax.tree.leaves((ref.learner.actor_params, ref.learner.critic_params)),
                    jax.tree.leaves((pi.base, v.base))):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
    start = jax.jit(trainer.init)(jax.random.PRNGKey(0)).learner
    for x, y in zip(jax.tree.leaves((start.actor_params.shift, start.critic_params.shift)),
                    jax.tree.leaves((pi.shift, v.shift))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # evaluation acts with π_ind, which is not π's parameter set but close to it after the distillation
    ind = trainer.policy_params(b2)
    assert ind is b2.learner.order.ind_params
    assert not all(np.allclose(np.asarray(x), np.asarray(y))
                   for x, y in zip(jax.tree.leaves(ind), jax.tree.leaves(pi.base)))
    assert np.isfinite(np.asarray(m["derived_kl"])).all() and int(np.asarray(m["nonfinite"]).max()) == 0
    # the upper layer learns from the second update on (its first transition completes there)
    assert np.isnan(np.asarray(m["dag_policy_loss"])[0]) and np.isfinite(np.asarray(m["dag_policy_loss"])[1:]).all()
    assert not all(np.allclose(np.asarray(x), np.asarray(y))
                   for x, y in zip(jax.tree.leaves(start.order.gen_params), jax.tree.leaves(b2.learner.order.gen_params)))
    out = evaluate(trainer, ind, jax.random.PRNGKey(2), episodes=2)
    assert np.isfinite(out["return_mean"])


# ---------------------------------------------------------------------------------------------------------
# §4.2: π reads the actions of the agents in preceding batches
# ---------------------------------------------------------------------------------------------------------
# 5 agents, DAG 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3, agent 4 free: levels [0, 1, 1, 2, 0], batches {0, 4}, {1, 2}, {3}
DIAMOND = [(0, 1), (0, 2), (1, 3), (2, 3)]


@pytest.mark.parametrize("jit", JIT)
def test_preceding_mask_and_block_on_a_constructed_dag(jit):
    groups = level_groups(topological_levels(_edges(DIAMOND, 5)), 3)
    mask = np.asarray(_maybe_jit(preceding_mask, jit)(groups))
    want = np.zeros((5, 5), bool)
    want[1, [0, 4]] = want[2, [0, 4]] = True  # batch 1 sees batch 0, not its batch mate
    want[3, [0, 1, 2, 4]] = True  # batch 2 sees everyone before it
    np.testing.assert_array_equal(mask, want)  # agents 0 and 4 (first batch) see nobody
    # actions [2, 0, 1, 2, 1] of 3 choices: agent 3's block is onehot(2), onehot(0), onehot(1), 0, onehot(1)
    block = np.asarray(_maybe_jit(preceding_block, jit)(action_features(jnp.array([2, 0, 1, 2, 1]), 3, True),
                                                         jnp.asarray(mask)))
    assert block.shape == (5, 15)
    np.testing.assert_array_equal(block[3], [0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(block[1], [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0])
    assert not block[[0, 4]].any()
    # Gaussian actions enter as their vectors
    cont = np.asarray(preceding_block(action_features(jnp.array([[0.5], [-1.0], [2.0], [0.0], [3.0]]), 1, False),
                                      jnp.asarray(mask)))
    np.testing.assert_array_equal(cont[3], [0.5, -1.0, 2.0, 0.0, 3.0])
    np.testing.assert_array_equal(cont[2], [0.5, 0.0, 0.0, 0.0, 3.0])


@pytest.mark.parametrize("jit", JIT)
def test_sampling_goes_batch_level_by_batch_level(jit):
    """A hand policy whose action is 1 + the sum of the action indices it sees (mod 8): the first batch {0, 4}
    draws 1, 1; batch {1, 2} sees them: 3, 3; agent 3 sees 0, 1, 2, 4: 1 + 1 + 3 + 3 + 1 = 9 mod 8 = 1.
    Each agent's output is taken from its own batch's pass (here: how many actions it saw) and the stored
    block is the one built from the final joint action; K = 3 passes."""
    groups = level_groups(topological_levels(_edges(DIAMOND, 5)), 3)
    U, calls = 8, []

    def policy_pass(block):
        calls.append(1)
        seen = block.reshape(block.shape[:-1] + (5, U))  # [E, A, A, U]
        total = jnp.sum(seen * jnp.arange(U), axis=(-1, -2))
        action = ((1 + total) % U).astype(jnp.int32)
        return jnp.zeros(block.shape[:-1] + (1,)), seen.sum((-1, -2))[..., None], action

    feats = lambda a: action_features(a, U, True)  # noqa: E731
    run = lambda g: sample_by_batches(policy_pass, g, feats, 5 * U, (2,))  # noqa: E731
    _, out, action, block = _maybe_jit(run, jit)(groups)
    np.testing.assert_array_equal(np.asarray(action), [[1, 3, 3, 1, 1]] * 2)
    np.testing.assert_array_equal(np.asarray(out)[..., 0], [[0, 2, 2, 4, 0]] * 2)
    np.testing.assert_array_equal(np.asarray(block), np.asarray(preceding_block(feats(action),
                                                                                preceding_mask(groups))))
    assert len(calls) == 3


@pytest.mark.parametrize("jit", JIT)
def test_preceding_value_loss_on_hand_numbers(jit):
    """V(s, a^{B_k}) on every active entry, V(s, 0) in addition where the agent had predecessors, over #active:
    entries 0 and 1 active, 1 and 2 preceded -> (1 + 2 + 20) / 2; nobody preceded -> the plain masked mean."""
    loss = _maybe_jit(preceding_value_loss, jit)
    per, per_zero = jnp.array([[1.0, 2.0, 3.0]]), jnp.array([[10.0, 20.0, 30.0]])
    mask = jnp.array([[True, True, False]])
    assert float(loss(per, per_zero, mask, jnp.array([[False, True, True]]))) == pytest.approx(11.5)
    assert float(loss(per, per_zero, mask, jnp.zeros((1, 3), bool))) == pytest.approx(1.5)
    block = jnp.array([[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, -0.5, 0.0]])
    np.testing.assert_array_equal(np.asarray(_maybe_jit(has_preceding, jit)(block)), [False, True, True])


@pytest.fixture(scope="module")
def chain():
    """δ = 0 keeps every forward edge of the ordering: a DAG of 3 levels on 3-agent MPE (π reads the preceding
    batches' actions, B2MAPO's default). (trainer, state, metrics), compiled once for two tests."""
    return _run(algo="b2mapo", dag_threshold=0.0)


def test_preceding_actions_runs_with_several_batches_and_uses_the_rollouts_batches(chain):
    """The first update uses the batches its rollout was sampled with (the initial single batch), later ones
    the DAG decided on the rollout before."""
    trainer, state, m = chain
    assert np.asarray(m["dag_batches"]).tolist() == [1.0, 3.0, 3.0]
    assert np.isfinite(np.asarray(m["derived_kl"])).all() and int(np.asarray(m["nonfinite"]).max()) == 0
    assert np.asarray(state.learner.order.groups).sum(0).tolist() == [1, 1, 1]


def test_rollout_inputs_reproduce_the_behaviour_policy(chain):
    """With the batches {2}, {0}, {1} and a shift network large enough for the block to matter: the stored
    inputs carry each agent's view of the preceding batches' actions; π on them gives the rollout's
    log-probabilities again (so the update's ratios start at 1), and the block does change π."""
    trainer, state, _ = chain
    pi = state.learner.actor_params
    pi = pi._replace(shift=jax.tree.map(lambda w: 30.0 * w, pi.shift))
    groups = jnp.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], bool)
    learner = state.learner._replace(actor_params=pi, order=state.learner.order._replace(groups=groups))
    _, traj = jax.jit(trainer.rollout)(learner, state.runner, jax.random.PRNGKey(3))
    own, U = trainer.own_in_dim, trainer.spec.num_actions
    block = np.asarray(traj.actor_in[..., own:]).reshape(traj.action.shape + (3, U))
    onehot = np.eye(U)[np.asarray(traj.action)]  # [T, E, A, U]
    assert not block[:, :, 2].any()  # agent 2 acts first
    assert not block[:, :, 0, :2].any() and not block[:, :, 1, 1].any()
    np.testing.assert_array_equal(block[:, :, 0, 2], onehot[:, :, 2])  # agent 0 (second) sees agent 2
    np.testing.assert_array_equal(block[:, :, 1, 0], onehot[:, :, 0])  # agent 1 (third) sees 0 and 2
    np.testing.assert_array_equal(block[:, :, 1, 2], onehot[:, :, 2])
    batch = trainer.make_batch(traj, traj.logp, traj.logp, traj.logp, state.runner)
    logp = trainer.policy_logp(learner.actor_params, batch)
    np.testing.assert_allclose(np.asarray(logp), np.asarray(traj.logp), atol=1e-5)
    without = np.asarray(trainer.policy_logp(pi.base, batch))  # MAPPO's actor alone, on the own input
    assert np.abs(without - np.asarray(traj.logp))[:, :, :2].max() > 1e-2
    np.testing.assert_allclose(without[:, :, 2], np.asarray(traj.logp)[:, :, 2], atol=1e-5)


def test_critic_reads_the_block_and_bootstraps_with_the_zero_block(chain):
    """preceding_values (B2MAPO's default): the rollout's values are V_base(s) + W_2 tanh(W_1 block) on the
    stored blocks (by hand from the shift's two matrices), the bootstrap at s_T is V_base(s_T) alone; with the
    bootstrap states' values are V_base's."""
    trainer, state, _ = chain
    v = state.learner.critic_params
    assert isinstance(v, PrecedingParams)
    v = v._replace(shift=jax.tree.map(lambda w: 30.0 * w, v.shift))
    groups = jnp.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], bool)
    learner = state.learner._replace(critic_params=v, order=state.learner.order._replace(groups=groups))
    end, traj = jax.jit(trainer.rollout)(learner, state.runner, jax.random.PRNGKey(4))
    values, _, _, _, trace = jax.jit(trainer.evaluate)(learner, state.runner, end, traj)
    block = np.asarray(trainer.preceding_block_of(traj.actor_in))
    w1, w2 = (np.asarray(leaf) for leaf in jax.tree.leaves(v.shift))  # Dense_0 [A·U, H], Dense_1 [H, 1]
    _, base = jax.jit(trainer.critic_apply)(v, state.runner.critic_h, traj.critic_in, traj.reset)
    np.testing.assert_allclose(np.asarray(values), np.asarray(base) + (np.tanh(block @ w1) @ w2)[..., 0],
                               rtol=1e-5, atol=1e-5)
    assert np.abs(np.asarray(values) - np.asarray(base))[:, :, :2].max() > 1e-2  # agents 0 and 1 have predecessors
    np.testing.assert_array_equal(np.asarray(values)[:, :, 2], np.asarray(base)[:, :, 2])  # agent 2 acts first
    # the bootstrap: r + γ(1 − term)V' equals the option-less critic's (V_base) exactly where V' is s_T's or a
    # pre-reset final state's value, and differs where V' is a rollout state's V(s, a^{B_k})
    ref = learner._replace(critic_params=v.base)
    values1, _, _, _, trace1 = jax.jit(trainer.evaluate)(ref, state.runner, end, traj)
    den = lambda x: np.asarray(L.denormalize(learner.value_norm, x))  # noqa: E731
    nv, nv1 = np.asarray(trace.deltas) + den(values), np.asarray(trace1.deltas) + den(values1)
    boot = np.asarray(trace.episode_end)[..., 0].copy()
    boot[-1] = True
    np.testing.assert_allclose(nv[boot], nv1[boot], rtol=1e-5, atol=1e-5)
    assert np.abs(nv[~boot] - nv1[~boot])[:, :2].max() > 1e-2


def test_preceding_actions_needs_the_dag_partition():
    from trustmarl.config import Config, ConfigError
    with pytest.raises(ConfigError, match="preceding_actions=True needs batch_partition=dag"):
        Config.build({"algo": "happo", "preceding_actions": True})
    off = Config.build({"algo": "b2mapo", "preceding_actions": False})
    assert not off.preceding_actions and not off.preceding_values  # V has no block to read without it
    with pytest.raises(ConfigError, match="preceding_values=True needs preceding_actions=True"):
        Config.build({"algo": "b2mapo", "preceding_actions": False, "preceding_values": True})
