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


# ---------------------------------------------------------------------------------------------------------
# ind_during: eq. 13's π_ind step fused into the actor's minibatch steps
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("jit", [False, True])
def test_eq13_gradient_in_pi_inds_logits_on_hand_numbers(jit):
    """``∂KL(p ‖ softmax(z))/∂z = softmax(z) − p`` per active entry, divided by the active count: agent 0
    p = [0.5, 0.5, −], q = [0.25, 0.75, −] (third action unavailable) → [−0.25, 0.25, 0]; agent 1 inactive → 0.
    This is the gradient the fused step passes into π_ind's network (π's side is fixed)."""
    from trustmarl.networks import MASKED_LOGIT
    from trustmarl.seams.dag import derived_kl
    avail = jnp.array([[True, True, False], [True, True, True]])
    p = jnp.where(avail, jnp.log(jnp.array([[0.5, 0.5, 1.0], [0.9, 0.05, 0.05]])), MASKED_LOGIT)
    q = jnp.where(avail, jnp.log(jnp.array([[0.25, 0.75, 1.0], [0.1, 0.1, 0.8]])), MASKED_LOGIT)
    grad = jax.grad(lambda z: derived_kl(p, z, avail, jnp.array([True, False]), True))
    g = (jax.jit(grad) if jit else grad)(q)
    np.testing.assert_allclose(np.asarray(g), [[-0.25, 0.25, 0.0], [0.0, 0.0, 0.0]], atol=1e-6)


@pytest.fixture(scope="module")
def fused(setup):
    """One minibatch of the module's rollout and π_ind's fused-step companion."""
    from trustmarl.seams.dag import ind_companion
    trainer, state, batch, _, _ = setup
    mb = jax.tree.map(lambda x: x[0], trainer.minibatches(batch, jax.random.PRNGKey(4)))
    return trainer, state.learner, mb, ind_companion(trainer._pieces, trainer._pieces.dag)


@pytest.mark.parametrize("jit", [False, True])
def test_fused_step_leaves_pis_step_unchanged_and_gives_pi_ind_eq13s_gradient(fused, jit):
    """``actor_step(..., companion=π_ind)``: π's parameters and optimiser state after the step equal those of
    the step without the companion (KL's π side is stop-gradient'ed), and π_ind's gradient equals that of
    eq. 13's loss computed apart, ``∇_φ E[KL(sg(π_θ) ‖ π_φ)]`` with π's outputs from a separate pass; π_ind then
    takes its optimiser's step with that gradient."""
    from trustmarl.seams.dag import derived_kl
    trainer, learner, mb, comp = fused
    d = trainer._pieces.dag
    everyone = jnp.ones((trainer.num_agents,), bool)
    recorded = comp._replace(step=lambda lr, g: (comp.step(lr, g)[0], {"g_ind": g}))

    def both(learner):
        plain, _ = trainer.actor_step(learner, mb, everyone)
        with_ind, m = trainer.actor_step(learner, mb, everyone, companion=recorded)
        return plain, with_ind, m

    plain, with_ind, m = (jax.jit(both) if jit else both)(learner)
    for x, y in zip(jax.tree.leaves((plain.actor_params, plain.actor_opt)),
                    jax.tree.leaves((with_ind.actor_params, with_ind.actor_opt))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    def apart(phi):
        target = jax.lax.stop_gradient(d.policy_out(learner.actor_params, mb))
        own = mb._replace(actor_h=jnp.zeros_like(mb.actor_h))
        return derived_kl(target, d.policy_out(phi, own), mb.avail, trainer._pieces.mask(mb), d.discrete)

    phi = learner.order.ind_params
    grad = jax.value_and_grad(apart)
    kl, g_ref = (jax.jit(grad) if jit else grad)(phi)
    # two programs: a KL of ~3e-5 is a difference of O(1) log-probabilities, so its last digits are rounding
    assert float(m["derived_kl"]) == pytest.approx(float(kl), rel=1e-4, abs=1e-9)
    for x, y in zip(jax.tree.leaves(m["g_ind"]), jax.tree.leaves(g_ref)):
        y = np.asarray(y)
        np.testing.assert_allclose(np.asarray(x), y, rtol=1e-4, atol=1e-4 * float(np.abs(y).max()) + 1e-12)
    assert float(kl) > 0 and any(float(jnp.abs(x).max()) > 0 for x in jax.tree.leaves(g_ref))
    # the real companion's step: π_ind's optimiser on that gradient, π's state as without the companion
    stepped, m2 = trainer.actor_step(learner, mb, everyone, companion=comp)
    expected, _ = d.ind_opt.step(phi, learner.order.ind_opt, g_ref, learner.updates, everyone)
    for x, y in zip(jax.tree.leaves(stepped.order.ind_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    assert bool(m2["derived_grads_finite"])


def test_pi_ind_must_be_trained_by_some_schedule():
    from trustmarl.config import Config, ConfigError
    with pytest.raises(ConfigError, match="ind_epochs=0 with ind_during=false"):
        Config.build({"algo": "b2mapo", "ind_epochs": 0, "ind_during": False})
    Config.build({"algo": "b2mapo", "ind_epochs": 0, "ind_during": True})
