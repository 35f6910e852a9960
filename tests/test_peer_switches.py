"""The three switches that set trustmarl's MAPPO to JaxMARL's choices (issue 9, item 1; docs/results.md, parity
section): ``post_gru_gain``, ``minibatch_over`` and ``adv_norm_scope``, with their forbidden combinations."""
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.config import Config, ConfigError
from trustmarl.networks import Actor, Critic
from trustmarl.trainers import make_train
from trustmarl.trainers.on_policy import Batch, shuffle_per_agent


def _post_kernel(params):
    found = [v["kernel"] for k, v in _walk(params) if k == "post"]
    assert len(found) == 1
    return np.asarray(found[0])


def _walk(tree):
    for k, v in tree.items():
        if isinstance(v, dict) or hasattr(v, "items"):
            yield k, v
            yield from _walk(v)


# --- post_gru_gain ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("gain", [float(np.sqrt(2)), 2.0])
@pytest.mark.parametrize("net", ["actor", "critic"])
def test_post_gru_gain_sets_singular_values(gain, net):
    # W = gain · Q with Q orthogonal (square, 8×8), so every singular value of W equals gain
    H, D = 8, 5
    if net == "actor":
        m = Actor(num_actions=3, discrete=True, hidden=(H,), recurrent=True, post_gru_gain=gain)
        args = (jnp.zeros((2, H)), jnp.zeros((1, 2, D)), jnp.zeros((1, 2), bool), jnp.ones((1, 2, 3), bool))
    else:
        m = Critic(hidden=(H,), recurrent=True, post_gru_gain=gain)
        args = (jnp.zeros((2, H)), jnp.zeros((1, 2, D)), jnp.zeros((1, 2), bool))
    kernel = _post_kernel(m.init(jax.random.PRNGKey(3), *args))
    assert kernel.shape == (H, H)
    np.testing.assert_allclose(np.linalg.svd(kernel, compute_uv=False), np.full(H, gain), rtol=1e-5)


def test_post_gru_gain_default_is_sqrt2_and_reaches_the_trainer():
    assert Config.build({}).post_gru_gain == float(np.sqrt(2))
    c = Config.build(dict(env="mpe_spread", network="gru", hidden=(8,), num_envs=2, rollout_length=4,
                          post_gru_gain=2.0))
    tr = make_train(c)
    assert tr.actor.module.post_gru_gain == 2.0 and tr.critic.module.post_gru_gain == 2.0


# --- minibatch_over -----------------------------------------------------------------------------------------
T, E, A, M = 3, 4, 3, 2


def _tagged_batch():
    """Every entry carries its (env, agent) tag ``10·e + a`` (and ``t`` in a second feature), so where it lands
    after the shuffle can be read off."""
    e = jnp.arange(E)[None, :, None]
    a = jnp.arange(A)[None, None, :]
    t = jnp.arange(T)[:, None, None]
    tag = jnp.broadcast_to(10.0 * e + a, (T, E, A)).astype(jnp.float32)
    tt = jnp.broadcast_to(t, (T, E, A)).astype(jnp.float32)
    x = jnp.stack([tag, tt], -1)
    reset = jnp.broadcast_to((jnp.arange(E)[None, :] + jnp.arange(T)[:, None]) % 2 == 0, (T, E))
    h = jnp.broadcast_to(10.0 * jnp.arange(E)[:, None, None] + jnp.arange(A)[None, :, None], (E, A, 2))
    return Batch(actor_in=x, critic_in=x, avail=jnp.ones((T, E, A, 2), bool), action=jnp.zeros((T, E, A), int),
                 logp=tag, dist=x, active=jnp.ones((T, E, A), bool), reset=reset, value=tag, target=tag,
                 adv=tag, adv_joint=tag.mean(-1), actor_h=h, critic_h=h)


@pytest.fixture(scope="module")
def gru_trainers():
    base = dict(env="mpe_spread", num_agents=A, network="gru", hidden=(8,), num_envs=E, rollout_length=T,
                num_minibatches=M, measure_trust_region=False)
    return {over: make_train(Config.build({**base, "minibatch_over": over})) for over in ("envs", "agents")}


@pytest.mark.parametrize("jit", [False, True])
def test_minibatch_over_agents_gru(gru_trainers, jit):
    tr = gru_trainers["agents"]
    f = jax.jit(tr.minibatches) if jit else tr.minibatches
    b = _tagged_batch()
    split_somewhere = False
    for seed in range(4):
        mb = f(b, jax.random.PRNGKey(seed))
        assert mb.actor_in.shape == (M, T, E // M, A, 2) and mb.reset.shape == (M, T, E // M, A)
        assert mb.adv_joint is None  # a mean over one env's agents means nothing after the shuffle
        tag = np.asarray(mb.actor_in[..., 0])  # [M, T, E/M, A]
        # a whole sequence moves: the tag is constant over time, time stays in order
        assert (tag == tag[:, :1]).all()
        np.testing.assert_array_equal(mb.actor_in[..., 1], np.broadcast_to(np.arange(T)[None, :, None, None],
                                                                           tag.shape))
        seq = tag[:, 0]  # [M, E/M, A]
        env_of, agent_of = seq // 10, seq % 10
        np.testing.assert_array_equal(agent_of, np.broadcast_to(np.arange(A), agent_of.shape))  # agent column kept
        # each (env, agent) sequence in exactly one minibatch of the epoch, E/M per agent in each
        for a in range(A):
            assert sorted(env_of[:, :, a].ravel().astype(int)) == list(range(E))
        # every field follows its entry: value, hidden state, and the reset flags of its own env
        np.testing.assert_array_equal(mb.value[:, 0], seq)
        np.testing.assert_array_equal(mb.actor_h[..., 0], seq)
        want_reset = (env_of[:, None].astype(int) + np.arange(T)[None, :, None, None]) % 2 == 0
        np.testing.assert_array_equal(mb.reset, want_reset)
        # an env whose agents are not all in one minibatch
        where = {e: {int(m) for m in np.nonzero(env_of == e)[0]} for e in range(E)}
        split_somewhere |= any(len(ms) > 1 for ms in where.values())
    assert split_somewhere


def test_minibatch_over_envs_keeps_agents_together(gru_trainers):
    mb = gru_trainers["envs"].minibatches(_tagged_batch(), jax.random.PRNGKey(0))
    seq = np.asarray(mb.actor_in[:, 0, :, :, 0])
    assert (seq // 10 == seq[..., :1] // 10).all()  # the agents at one position share their env
    assert mb.adv_joint is not None and mb.reset.shape == (M, T, E // M)


@pytest.mark.parametrize("jit", [False, True])
def test_shuffle_per_agent_ff_units_are_env_steps(jit):
    f = jax.jit(shuffle_per_agent, static_argnames="recurrent") if jit else shuffle_per_agent
    b = _tagged_batch()
    out = f(b, jax.random.PRNGKey(1), recurrent=False)
    # unit (t, e) flattened to t·E + e; each agent sees every unit exactly once, in its own order
    unit = np.asarray(out.actor_in[..., 1] * E + out.actor_in[..., 0] // 10).reshape(T * E, A)
    for a in range(A):
        assert sorted(unit[:, a].astype(int)) == list(range(T * E))
    assert not all((unit[:, 0] == unit[:, a]).all() for a in range(1, A))  # the agents' orders differ
    np.testing.assert_array_equal(np.asarray(out.actor_in[..., 0] % 10),
                                  np.broadcast_to(np.arange(A), (T, E, A)))
    assert out.reset.shape == (T, E, A)


def test_minibatch_over_agents_trains_gru():
    # one full update of the bench_peer layout (GRU, shared parameters, per-agent reset flags in the loss)
    c = Config.build(dict(env="mpe_spread", num_agents=2, network="gru", hidden=(8,), num_envs=4,
                          rollout_length=4, num_minibatches=2, update_epochs=1, total_env_steps=16,
                          minibatch_over="agents", measure_at="epoch_end", progress=False))
    _, metrics = jax.jit(make_train(c))(jax.random.PRNGKey(0))
    assert np.isfinite(np.asarray(metrics["policy_loss"])).all()
    assert np.isfinite(np.asarray(metrics["value_loss"])).all()


# --- forbidden combinations -------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, match", [
    (dict(algo="jrppo", minibatch_over="agents", measure_trust_region=False), r"ratio='joint'.*allowed"),
    (dict(algo="happo", minibatch_over="agents", measure_trust_region=False),
     r"update_order='random_permutation'.*allowed"),
    (dict(minibatch_over="agents"), r"measure_at='minibatch'.*allowed: measure_at=epoch_end"),
    (dict(algo="happo", adv_norm_scope="minibatch"), r"adv_norm_scope='minibatch'.*allowed"),
    (dict(adv_norm=False, adv_norm_scope="minibatch"), r"adv_norm=false.*allowed"),
    (dict(network="ff", post_gru_gain=2.0), r"post_gru_gain=2.0.*allowed: network=gru"),
    (dict(minibatch_over="actors"), r"minibatch_over='actors' is not one of envs, agents"),
])
def test_forbidden_combinations(kw, match):
    with pytest.raises(ConfigError, match=match) as err:
        Config.build(kw)
    assert "\n" not in str(err.value)


# --- adv_norm_scope -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ff_trainers():
    base = dict(env="mpe_spread", num_agents=2, hidden=(8,), num_envs=2, rollout_length=1, num_minibatches=1,
                ent_coef=0.0, measure_trust_region=False)
    return {s: make_train(Config.build({**base, "adv_norm_scope": s})) for s in ("rollout", "minibatch")}


def _hand_batch(tr, adv, active):
    U, D = tr.spec.num_actions, tr.own_in_dim
    z = jnp.zeros((1, 2, 2))
    return Batch(actor_in=jnp.zeros((1, 2, 2, D)), critic_in=jnp.zeros((1, 2, 2, tr.critic_in_dim)),
                 avail=jnp.ones((1, 2, 2, U), bool), action=jnp.zeros((1, 2, 2), int), logp=z,
                 dist=jnp.zeros((1, 2, 2, U)), active=active, reset=jnp.zeros((1, 2), bool), value=z, target=z,
                 adv=adv, adv_joint=adv.mean(-1), actor_h=jnp.zeros((2, 2, 1)), critic_h=jnp.zeros((2, 2, 1)))


ADV = jnp.array([[[1.0, 2.0], [3.0, 6.0]]])
W = jnp.array([[[1.0, 2.0], [3.0, 4.0]]])


@pytest.mark.parametrize("jit", [False, True])
def test_adv_norm_scope_minibatch_normalises_in_the_loss(ff_trainers, jit, monkeypatch):
    # the objective is replaced by Σ W·A_used, so the loss reads off the advantages the loss saw
    results = {}
    for scope, tr in ff_trainers.items():
        monkeypatch.setattr(tr, "objective", lambda x: ((W * x.adv).sum(), jnp.zeros_like(x.adv, bool)))
        params = tr.init_learner(jax.random.PRNGKey(0)).actor_params
        f = lambda p, b: tr.actor_loss(p, b)[0]  # noqa: E731
        f = jax.jit(f) if jit else f
        all_on = jnp.ones((1, 2, 2), bool)
        results[scope] = (float(f(params, _hand_batch(tr, ADV, all_on))),
                          float(f(params, _hand_batch(tr, ADV.at[0, 1, 1].set(100.0),
                                                      all_on.at[0, 1, 1].set(False)))))
    # rollout scope: the batch's advantages as they are: 1 + 4 + 9 + 24 = 38; the inactive entry is masked
    # out of the objective by the real objective only, here W·A counts it: 1 + 4 + 9 + 400 = 414
    assert results["rollout"] == pytest.approx((38.0, 414.0))
    # minibatch scope, all active: mean 3, std sqrt((4 + 1 + 0 + 9)/4) = sqrt(3.5):
    # Σ W·(A − 3)/sqrt(3.5) = (−2 − 2 + 0 + 12)/1.870829 = 4.276179
    # entry (1,1) inactive (use_active_masks): mean 2 and std sqrt(2/3) of [1, 2, 3];
    # Σ W·(A − 2)/0.816497 = (−1 + 0 + 3 + 4·98)/0.816497 = 482.5469
    assert results["minibatch"][0] == pytest.approx(8.0 / np.sqrt(3.5), rel=1e-5)
    assert results["minibatch"][0] == pytest.approx(4.276179, rel=1e-5)
    assert results["minibatch"][1] == pytest.approx(394.0 / np.sqrt(2.0 / 3.0), rel=1e-5)


def test_adv_norm_scope_minibatch_leaves_the_rollout_raw(ff_trainers):
    # make_batch normalises once per rollout only in rollout scope
    for scope, want in (("rollout", (ADV - 3.0) / np.sqrt(3.5)), ("minibatch", ADV)):
        tr = ff_trainers[scope]
        hb = _hand_batch(tr, ADV, jnp.ones((1, 2, 2), bool))
        traj = SimpleNamespace(**{f: getattr(hb, f) for f in ("actor_in", "critic_in", "avail", "action", "logp",
                                                              "dist", "active", "reset")})
        start = SimpleNamespace(actor_h=hb.actor_h, critic_h=hb.critic_h)
        got = tr.make_batch(traj, hb.value, hb.target, ADV, start).adv
        np.testing.assert_allclose(got, want, rtol=1e-5)
