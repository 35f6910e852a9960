"""Same data through the peer and through trustmarl: MAPPO-GRU at the peer's settings computes what the peer does.

The peer is JaxMARL's ``mappo_rnn_smax.py`` (../shared/peers/jaxmarl_baselines/MAPPO), the reference of
issue 9. One rollout is collected by trustmarl at ``benchmarks/bench_peer.py``'s ``mappo_smax`` settings (every
parity switch at the peer's value); the peer's own ``ActorRNN`` / ``CriticRNN`` classes get trustmarl's initial
parameters (flax's per-gate ``GRUCell`` kernels are the column blocks of trustmarl's fused ``[·, 3H]`` GRU
kernels), and both sides then evaluate and update on that same data and the same minibatches:

* the critic's values and the actor's log-probs of the whole rollout (GRU states reset where the agent is done);
* GAE and value targets, the peer's recursion cut by ``done["__all__"]`` only;
* one epoch of critic steps: ``VF_COEF · 0.5 · max((V − R)², (V_clip − R)²)`` (mean over every entry) through
  ``clip_by_global_norm(0.25) → adam(lr, eps=1e-5)``;
* one epoch of actor steps: the clipped surrogate with advantages normalised per minibatch over every entry,
  dead agents included, through the same optimiser.

The loss lines follow the peer's ``_actor_loss_fn`` / ``_critic_loss_fn`` (written here in this file's words,
since they are nested inside the peer's ``make_train`` and cannot be imported). Parameters must agree after
every step, so a difference in the update's arithmetic (not in sampling, which is random on both sides) fails.
"""
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PEER_DIR = ROOT.parent / "shared" / "peers" / "jaxmarl_baselines" / "MAPPO"
pytestmark = pytest.mark.skipif(not (PEER_DIR / "mappo_rnn_smax.py").exists(),
                                reason="the peer's mappo_rnn_smax.py (../shared/peers) is not beside the repo")
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_parity  # noqa: E402

E, T, H = 8, 64, 128


def _import_peer():
    """The peer's module. Its top level imports wandb, hydra and omegaconf for its ``main`` only; where the
    bench extra is not installed they are stood in for during the import and removed from ``sys.modules``
    after it, so no other test sees them."""
    stubs = {}
    for name in ("wandb", "hydra", "omegaconf"):
        if importlib.util.find_spec(name) is None:
            mod = types.ModuleType(name)
            mod.main = lambda **kw: (lambda f: f)  # hydra.main(...) as a decorator
            mod.OmegaConf = object
            stubs[name] = mod
    sys.modules.update(stubs)
    sys.path.insert(0, str(PEER_DIR))
    try:
        return importlib.import_module("mappo_rnn_smax")
    finally:
        sys.path.remove(str(PEER_DIR))
        for name in stubs:
            sys.modules.pop(name, None)


def _peer_params(ours):
    """trustmarl's SequenceNet parameters as the peer's ActorRNN/CriticRNN parameters."""
    p = ours["params"]["SequenceNet_0"]
    g = p["gru"]
    k, b, r = g["input_proj"]["kernel"], g["input_proj"]["bias"], g["recurrent_kernel"]
    blk = lambda x, i: x[..., i * H:(i + 1) * H]  # noqa: E731  gate blocks r, z, n
    cell = {"ir": {"kernel": blk(k, 0), "bias": blk(b, 0)}, "iz": {"kernel": blk(k, 1), "bias": blk(b, 1)},
            "in": {"kernel": blk(k, 2), "bias": blk(b, 2)}, "hr": {"kernel": blk(r, 0)},
            "hz": {"kernel": blk(r, 1)}, "hn": {"kernel": blk(r, 2), "bias": g["recurrent_bias_n"]}}
    return {"params": {"Dense_0": p["torso"]["Dense_0"], "ScannedRNN_0": {"GRUCell_1": cell},
                       "Dense_1": p["post"], "Dense_2": p["head"]}}


def _actors(x):
    """``[T, E, A, ...]`` -> the peer's ``[T, A·E, ...]`` (agent-major actors, as its ``batchify``)."""
    return jnp.swapaxes(x, 1, 2).reshape((x.shape[0], x.shape[1] * x.shape[2]) + x.shape[3:])


def _hidden(h):
    """``[E, A, H]`` -> ``[A·E, H]``."""
    return jnp.swapaxes(h, 0, 1).reshape(-1, h.shape[-1])


@pytest.fixture(scope="module")
def setup():
    P = _import_peer()
    from trustmarl.config import Config
    from trustmarl.trainers import make_train
    over = {**bench_parity.ours_overrides("peer_settings", "2s3z"), "num_envs": E, "rollout_length": T,
            "total_env_steps": E * T * 2, "progress": False}
    cfg = Config.build(over)
    tr = make_train(cfg)
    st = tr.init(jax.random.PRNGKey(3))
    runner, traj = jax.jit(tr.rollout)(st.learner, st.runner, jax.random.PRNGKey(4))
    values, targets, adv, h_end, _ = jax.jit(tr.evaluate)(st.learner, st.runner, runner, traj)
    batch = tr.make_batch(traj, values, targets, adv, st.runner)
    mbs = tr.minibatches(batch, jax.random.PRNGKey(5))
    config = {"FC_DIM_SIZE": H, "GRU_HIDDEN_DIM": H}
    return types.SimpleNamespace(P=P, cfg=cfg, tr=tr, st=st, runner=runner, traj=traj, values=values,
                                 targets=targets, adv=adv, h_end=h_end, mbs=mbs,
                                 actor=P.ActorRNN(int(traj.avail.shape[-1]), config=config),
                                 critic=P.CriticRNN(config=config))


def test_the_rollout_exercises_resets_and_episode_ends(setup):
    """Agents die (per-agent GRU resets) and episodes end (GAE cuts) inside the rollout, so the comparisons
    below read those paths."""
    t = setup.traj
    assert bool(jnp.any(t.ep_done)) and bool(jnp.any(~t.active))
    assert t.reset.ndim == 3 and bool(jnp.any(t.reset[1:]))  # done_scope=agent: [T, E, A]


def test_values_log_probs_and_gae_equal_the_peers(setup):
    s, P = setup, setup.P
    t, A = s.traj, s.traj.action.shape[-1]
    h0 = jnp.zeros((A * E, H))
    _, v_peer = s.critic.apply(_peer_params(s.st.learner.critic_params), h0,
                               (_actors(t.critic_in), _actors(t.reset)))
    np.testing.assert_allclose(v_peer, _actors(s.values), atol=1e-5)
    _, pi = s.actor.apply(_peer_params(s.st.learner.actor_params), h0,
                          (_actors(t.actor_in), _actors(t.reset), _actors(t.avail).astype(jnp.float32)))
    np.testing.assert_allclose(pi.log_prob(_actors(t.action)), _actors(t.logp), atol=1e-5)
    # the peer's GAE: δ = r + γ V' (1 − d) − V, A = δ + γλ(1 − d) A', d = done["__all__"] of the step, the last
    # value from the state after the rollout (GRU carried on from the rollout's end)
    last_in = s.tr.critic_in(s.runner.timestep.obs, s.runner.timestep.state)[None]
    _, last = s.tr.critic_apply(s.st.learner.critic_params, s.h_end, last_in, s.runner.reset[None])
    gamma, lam = s.cfg.gamma, s.cfg.gae_lambda
    done = jnp.tile(t.ep_done, (1, A)).astype(jnp.float32)

    def back(carry, x):
        gae, next_v = carry
        d, v, r = x
        delta = r + gamma * next_v * (1 - d) - v
        gae = delta + gamma * lam * (1 - d) * gae
        return (gae, v), gae

    last = _actors(last)[0]
    _, adv = jax.lax.scan(back, (jnp.zeros_like(last), last), (done, v_peer, _actors(t.reward)), reverse=True)
    np.testing.assert_allclose(adv, _actors(s.adv), atol=1e-5)
    np.testing.assert_allclose(adv + v_peer, _actors(s.targets), atol=1e-5)


@pytest.mark.parametrize("jit", [True, False])
def test_one_epoch_of_critic_and_actor_steps_equals_the_peers(setup, jit):
    s, P = setup, setup.P
    c, A = s.cfg, s.traj.action.shape[-1]
    tx = optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(c.lr, eps=c.adam_eps))
    cp, ap = _peer_params(s.st.learner.critic_params), _peer_params(s.st.learner.actor_params)
    c_opt, a_opt = tx.init(cp), tx.init(ap)

    def critic_loss(params, h, b):
        _, v = s.critic.apply(params, h, (_actors(b.critic_in), _actors(b.reset)))
        old, tgt = _actors(b.value), _actors(b.target)
        v_clip = old + jnp.clip(v - old, -c.clip_eps, c.clip_eps)
        return c.vf_coef * 0.5 * jnp.maximum(jnp.square(v - tgt), jnp.square(v_clip - tgt)).mean()

    def actor_loss(params, h, b):
        _, pi = s.actor.apply(params, h, (_actors(b.actor_in), _actors(b.reset),
                                          _actors(b.avail).astype(jnp.float32)))
        log_ratio = pi.log_prob(_actors(b.action)) - _actors(b.logp)
        ratio = jnp.exp(log_ratio)
        gae = _actors(b.adv)
        gae = (gae - gae.mean()) / (gae.std() + 1e-8)
        surr = jnp.minimum(ratio * gae, jnp.clip(ratio, 1 - c.clip_eps, 1 + c.clip_eps) * gae)
        return -surr.mean()

    peer_critic_step = jax.value_and_grad(critic_loss)
    peer_actor_step = jax.value_and_grad(actor_loss)
    ours_critic_step, ours_actor_step = s.tr.critic_step, s.tr.actor_step
    if jit:
        peer_critic_step, peer_actor_step = jax.jit(peer_critic_step), jax.jit(peer_actor_step)
        ours_critic_step, ours_actor_step = jax.jit(ours_critic_step), jax.jit(ours_actor_step)
    learner, everyone = s.st.learner, jnp.ones((A,), bool)
    # without jit every op dispatches on its own (slow): the epoch's first minibatch step there
    for i in range(c.num_minibatches if jit else 1):
        b = jax.tree.map(lambda x: x[i], s.mbs)
        lc, gc = peer_critic_step(cp, _hidden(b.critic_h), b)
        up, c_opt = tx.update(gc, c_opt, cp)
        cp = optax.apply_updates(cp, up)
        la, ga = peer_actor_step(ap, _hidden(b.actor_h), b)
        up, a_opt = tx.update(ga, a_opt, ap)
        ap = optax.apply_updates(ap, up)
        learner, mc = ours_critic_step(learner, b)
        learner, ma = ours_actor_step(learner, b, everyone)
        assert float(mc["value_loss"]) * c.vf_coef == pytest.approx(float(lc), rel=1e-5)
        # the first step's loss is ≈ 0 (ratio 1, normalised advantages), so the tolerance is absolute
        assert float(ma["policy_loss"]) == pytest.approx(float(la), rel=1e-4, abs=1e-6)
        for peer, ours in ((cp, learner.critic_params), (ap, learner.actor_params)):
            jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6),
                         peer, _peer_params(ours))
    # the epoch moved the parameters, so the comparison was not of initial values
    moved = jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), learner.actor_params,
                         s.st.learner.actor_params)
    assert max(jax.tree.leaves(moved)) > 1e-4
