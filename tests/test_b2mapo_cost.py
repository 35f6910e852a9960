"""B2MAPO's update cost without changing the update: the sequential machinery runs no policy pass for the
first group (its preceding factor is 1) and stops after the last non-empty group (under the seed ``vmap`` a
skipped group would otherwise cost a full group update); π_ind's learning rate option (``ind_lr_scale``)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.seams.update_orders import sequential
from trustmarl.trainers import make_train

from conftest import tiny

CFG = dict(algo="b2mapo", env="mpe_spread", num_agents=3, num_minibatches=1, ind_epochs=1,
           measure_trust_region=False)


@pytest.fixture(scope="module")
def setup():
    """(trainer, learner, batch, trace) of one tiny rollout, compiled once for the module."""
    trainer = make_train(tiny(**CFG))
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    end, traj = jax.jit(trainer.rollout)(state.learner, state.runner, jax.random.PRNGKey(1))
    values, targets, adv, _, trace = jax.jit(trainer.evaluate)(state.learner, state.runner, end, traj)
    batch = trainer.make_batch(traj, values, targets, adv, state.runner)
    return trainer, state, batch, trace, (end, traj)


def _counting_update(trainer, counts):
    """The batches order's machinery with ``policy_logp`` and ``actor_step`` counting their executions."""
    def counted(name, fn):
        def wrapped(*args):
            out = fn(*args)
            leaf = jax.tree.leaves(out)[0]
            jax.debug.callback(lambda x: counts.__setitem__(name, counts[name] + 1), jnp.sum(leaf))
            return out
        return wrapped

    p = trainer._pieces
    p = p._replace(policy_logp=counted("logp", p.policy_logp), actor_step=counted("step", p.actor_step))
    return sequential(p, lambda learner, batch, key: learner.order.groups, skip_empty=True)


G = {"one": [[1, 1, 1], [0, 0, 0], [0, 0, 0]], "two": [[1, 0, 0], [0, 1, 1], [0, 0, 0]],
     "three": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}


def test_only_non_empty_groups_run_and_the_first_needs_no_policy_pass(setup):
    """Under the seed vmap (one seed; one program, the batches are data): a policy pass per group after the
    first, ``update_epochs × num_minibatches`` actor steps per non-empty group, nothing for the empty rows
    after the last level."""
    trainer, state, batch, trace, _ = setup
    counts = {"logp": 0, "step": 0}
    update = jax.jit(jax.vmap(_counting_update(trainer, counts)))
    c = trainer.config
    one = lambda x: x[None]  # noqa: E731
    for name, passes, groups_run in (("one", 0, 1), ("two", 1, 2), ("three", 2, 3)):
        counts.update(logp=0, step=0)
        learner = state.learner._replace(order=state.learner.order._replace(groups=jnp.asarray(G[name], bool)))
        out = update(jax.tree.map(one, learner), jax.tree.map(one, batch), jax.random.PRNGKey(2)[None],
                     jax.tree.map(one, trace))
        jax.block_until_ready(out)
        jax.effects_barrier()
        assert counts == {"logp": passes, "step": groups_run * c.update_epochs * c.num_minibatches}, name


def test_empty_trailing_rows_change_nothing(setup):
    """Batches {0}, {1, 2} with an empty third row give the update of the two rows alone (parameters and the
    run groups' metrics); the row that did not run reports a NaN loss and a neutral preceding factor. (Jitted
    only: the whole update op by op took minutes on the shared test machine.)"""
    trainer, state, batch, trace, _ = setup
    update = jax.jit(sequential(trainer._pieces, lambda learner, batch, key: learner.order.groups, skip_empty=True))
    outs = []
    for rows in (G["two"], G["two"][:2]):
        learner = state.learner._replace(order=state.learner.order._replace(groups=jnp.asarray(rows, bool)))
        outs.append(update(learner, batch, jax.random.PRNGKey(2), trace))
    (l3, (m3, _)), (l2, (m2, _)) = outs
    for x, y in zip(jax.tree.leaves((l3.actor_params, l3.critic_params)),
                    jax.tree.leaves((l2.actor_params, l2.critic_params))):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
    E = trainer.config.update_epochs  # metrics rows: one per (group, epoch)
    np.testing.assert_allclose(np.asarray(m3["policy_loss"])[:2 * E], np.asarray(m2["policy_loss"]), rtol=1e-6)
    assert np.isnan(np.asarray(m3["policy_loss"])[2 * E:]).all()
    assert np.isinf(np.asarray(m3["preceding_factor_min"])[2 * E:]).all()
    # the second row's factor is the first agent's ratio after its update: not identically 1
    assert float(np.asarray(m2["preceding_factor_max"])[E:].max()) > 1.0


@pytest.mark.parametrize("jit", [False, True])
def test_ind_lr_scale_scales_pi_inds_adam_step(jit):
    """π_ind's optimiser (eq. 13's steps) with ``ind_lr_scale=3``: from zero moments one Adam step is
    ``Δ = −3·lr·ĝ/(|ĝ| + ε)`` per entry (ĝ the gradient after the global-norm clip, here below the clip);
    with the default scale it is the actor's optimiser itself, so the default update is unchanged."""
    base = make_train(tiny(**CFG))
    assert base._pieces.dag.ind_opt is base.actor_opt
    scaled = make_train(tiny(**CFG, ind_lr_scale=3.0))
    opt = scaled._pieces.dag.ind_opt
    c = scaled.config
    params = {"w": jnp.array([1.0, 2.0])}
    g = {"w": jnp.array([0.3, -0.2])}  # global norm 0.36 < max_grad_norm 0.5: no clip
    step = lambda p, s, gr: opt.step(p, s, gr, jnp.zeros((), jnp.int32), jnp.ones((3,), bool))  # noqa: E731
    new, _ = (jax.jit(step) if jit else step)(params, opt.init(params), g)
    gw = np.array([0.3, -0.2])
    expected = np.array([1.0, 2.0]) - 3.0 * c.lr * gw / (np.abs(gw) + c.adam_eps)
    np.testing.assert_allclose(np.asarray(new["w"]), expected, rtol=1e-6)


def test_ind_lr_scale_must_be_positive():
    from trustmarl.config import Config, ConfigError
    with pytest.raises(ConfigError, match="ind_lr_scale"):
        Config.build({"algo": "b2mapo", "ind_lr_scale": 0.0})
