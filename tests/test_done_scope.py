"""``done_scope``: where recurrent states restart (issue 9, item 1, difference 5 of docs/results.md's parity
table). JaxMARL's ``mappo_rnn_smax`` resets a GRU state where *its agent* is done (SMAX: ``dones[agent] =
¬unit_alive``, read before the auto-reset) and cuts GAE at the env's episode ends only."""
from types import SimpleNamespace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxmarl.environments.multi_agent_env import MultiAgentEnv
from jaxmarl.environments.spaces import Box, Discrete

from trustmarl.config import Config, ConfigError
from trustmarl.envs import EnvHooks, JaxMARLAdapter
from trustmarl.networks import apply_agents
from trustmarl.seams.advantages import ADVANTAGES
from trustmarl.trainers import make_train
from trustmarl.trainers.on_policy import OnPolicyTrainer

LIMIT = 4  # steps per episode
DIES_AT = 2  # agent 1 is dead in every state from env step 2 of an episode on; agent 0 always survives


class _State(NamedTuple):
    step: jax.Array


class _Dying(MultiAgentEnv):
    """Two agents, episodes of exactly ``LIMIT`` steps (a time limit, so survivors remain at the end); agent 1
    dies when the step counter reaches ``DIES_AT``. Observations ``[step + 1, agent]`` change every step, so a
    GRU state that is carried differs from one that restarts from zero."""

    def __init__(self):
        super().__init__(num_agents=2)
        self.max_steps = LIMIT
        self.observation_spaces = {a: Box(-10.0, 10.0, (2,)) for a in self.agents}
        self.action_spaces = {a: Discrete(3) for a in self.agents}

    def _obs(self, st):
        return {a: jnp.array([st.step + 1.0, float(i)]) for i, a in enumerate(self.agents)}

    def reset(self, key):
        st = _State(jnp.zeros((), jnp.int32))
        return self._obs(st), st

    def step_env(self, key, st, actions):
        st = _State(st.step + 1)
        dones = {a: jnp.asarray(i == 1) & (st.step >= DIES_AT) for i, a in enumerate(self.agents)}
        dones["__all__"] = st.step >= LIMIT
        return self._obs(st), st, {a: jnp.ones(()) for a in self.agents}, dones, {}


def _alive(env, st):
    return jnp.array([True, False]) | (st.step < DIES_AT)


T, E = 6, 2
BASE = dict(env="mpe_spread", network="gru", hidden=(8,), num_envs=E, rollout_length=T, num_minibatches=2,
            update_epochs=1, bootstrap_truncation=False, use_active_masks=False, value_norm=False,
            minibatch_over="agents", measure_trust_region=False)


def _trainer(scope, **kw) -> OnPolicyTrainer:
    env = JaxMARLAdapter(_Dying(), "dying", hooks=EnvHooks(alive=_alive), global_state="concat_obs")
    return make_train(Config.build({**BASE, "done_scope": scope, **kw}), env=env)


# Reset flags of T = 6 steps, obs_t at step counter t mod 4 (both envs alike), agents (0, 1). Agent 1 is dead
# at counters 2, 3 and in the ended episode's last state (counter 4); at t = 4 a new episode begins, and
# agent 0, alive in the ended episode's last state, keeps its state under the peer's rule.
EXPECTED = {
    "env": [[1, 1], [0, 0], [0, 0], [0, 0], [1, 1], [0, 0]],
    "agent": [[1, 1], [0, 0], [0, 1], [0, 1], [0, 1], [0, 0]],
    "env_or_agent": [[1, 1], [0, 0], [0, 1], [0, 1], [1, 1], [0, 0]],
}


@pytest.fixture(scope="module")
def run():
    """The peer's scope on the dying env: one rollout, its critic pass, and sequence passes of both networks."""
    tr = _trainer("agent")
    state = tr.init(jax.random.PRNGKey(0))
    runner, traj = jax.jit(tr.rollout)(state.learner, state.runner, jax.random.PRNGKey(1))
    values, _, adv = jax.jit(tr.evaluate)(state.learner, state.runner, runner, traj)[:3]
    h0 = jnp.zeros((E, 2, tr.hidden_size))
    actor = jax.jit(lambda r: tr.actor_apply(state.learner.actor_params, h0, traj.actor_in, r, traj.avail)[1])
    critic = jax.jit(lambda r: apply_agents(tr.critic, state.learner.critic_params, h0, traj.critic_in, r)[1])
    return dict(tr=tr, state=state, runner=runner, traj=traj, values=np.asarray(values), adv=np.asarray(adv),
                actor=actor, critic=critic)


def _flags(scope):
    return jnp.broadcast_to(jnp.asarray(EXPECTED[scope], bool)[:, None], (T, E, 2))


def test_rollout_reset_flags_are_the_agents_own_dones(run):
    traj, runner = run["traj"], run["runner"]
    assert traj.reset.shape == (T, E, 2)
    np.testing.assert_array_equal(np.asarray(traj.reset), np.asarray(_flags("agent")))
    # carried past the rollout: obs_6 at counter 2, agent 1 dead there
    np.testing.assert_array_equal(np.asarray(runner.reset), np.tile([False, True], (E, 1)))


@pytest.mark.parametrize("scope", sorted(EXPECTED))
def test_next_reset_per_scope_on_built_timesteps(scope):
    """``next_reset`` on the timesteps of the dying env, built by hand: ``done`` at t = 3 (counter 4), agent 1
    dead at counters 2, 3, 4 (``final_active``; ``active`` is the post-reset one, alive again at counter 0)."""
    tr = _trainer(scope)
    counters = np.array([1, 2, 3, 4, 1])  # the state each of the steps t = 0..4 reached, before the reset
    done = jnp.asarray(counters == LIMIT)[:, None]  # [5, E=1]
    final_active = jnp.asarray(np.stack([np.ones(5, bool), counters < DIES_AT], -1))[:, None]  # [5, 1, 2]
    after = np.where(counters == LIMIT, 0, counters)
    active = jnp.asarray(np.stack([np.ones(5, bool), after < DIES_AT], -1))[:, None]
    ts = SimpleNamespace(terminated=jnp.zeros_like(done), truncated=done, active=active, final_active=final_active)
    got = np.asarray(tr.next_reset(ts))  # elementwise: the leading time axis rides along
    want = np.asarray(EXPECTED[scope], bool)[1:]
    np.testing.assert_array_equal(got.reshape(5, -1), want[:, :1] if scope == "env" else want)
    assert tr.first_reset(3).shape == ((3,) if scope == "env" else (3, 2))


@pytest.mark.parametrize("net", ["actor", "critic"])
def test_dead_agent_state_restarts_every_step(run, net):
    """A dead agent's GRU state is the initial one at every step after its death under ``agent`` and
    ``env_or_agent``, and carried under ``env``; under ``agent`` a survivor's runs on into the next episode.
    The rollout's logits and the critic pass equal a sequence pass with the rollout's own flags (what the
    losses re-run), and 'initial' means equal to the pass with every flag set."""
    seq = run[net]
    own = np.asarray(run["traj"].dist) if net == "actor" else run["values"]
    np.testing.assert_allclose(own, np.asarray(seq(_flags("agent"))), rtol=1e-5, atol=1e-7)
    fresh = np.asarray(seq(jnp.ones((T, E, 2), bool)))
    gap = lambda out, t, i: np.abs(out[t, :, i] - fresh[t, :, i]).max()  # noqa: E731
    for scope in EXPECTED:
        out = own if scope == "agent" else np.asarray(seq(_flags(scope)))
        for t in range(1, T):
            for i in (0, 1):
                if EXPECTED[scope][t][i]:
                    assert gap(out, t, i) < 1e-6, (scope, t, i)
                else:  # a carried state: the outputs differ from the initial state's
                    assert gap(out, t, i) > 1e-4, (scope, t, i, gap(out, t, i))


def test_gae_cuts_at_the_env_episode_end_not_at_a_death(run):
    """Under ``agent`` the advantages still come from GAE with the env's episode ends: recomputed in numpy
    from the trainer's own values, the dead agent's chain runs across its death (as the peer's, whose GAE
    reads ``done["__all__"]``)."""
    tr, traj, values, adv = run["tr"], run["traj"], run["values"], run["adv"]
    g, lam = tr.config.gamma, tr.config.gae_lambda
    end = np.asarray(traj.terminated | traj.truncated, np.float32)[..., None]  # [T, E, 1]: t = 3 only
    assert end[:, 0, 0].tolist() == [0, 0, 0, 1, 0, 0]
    r = np.asarray(traj.reward)
    # V' of the last step (the critic on obs_T) read back from Â_5 = r_5 + γV'_5 − V_5; every earlier step is
    # then checked against the recursion
    v_next_last = (adv[-1] - r[-1] + values[-1]) / g
    a = np.zeros_like(r)
    carry = np.zeros_like(r[0])
    for t in reversed(range(T)):
        v_next = v_next_last if t == T - 1 else values[t + 1]
        delta = r[t] + g * (1 - end[t]) * v_next - values[t]
        carry = delta + g * lam * (1 - end[t]) * carry
        a[t] = carry
    np.testing.assert_allclose(adv, a, rtol=1e-5, atol=1e-6)
    # a cut at agent 1's death (counter 2, t = 2) would make Â_1 = δ_1 for it; the chain is not cut
    delta1 = r[1, :, 1] + g * values[2, :, 1] - values[1, :, 1]
    assert np.abs(adv[1, :, 1] - delta1).max() > 1e-3


@pytest.mark.parametrize("jit", [False, True])
def test_gae_on_hand_numbers_dead_agent_is_not_terminal(jit):
    """γ = 0.5, λ = 0.5, one env, two agents over T = 3; agent 1 dies after step 0, the episode ends by a
    termination at t = 2. The env's flags alone enter:
        δ_t = r_t + γ(1 − term_t) V_{t+1} − V_t,   Â_t = δ_t + γλ(1 − end_t) Â_{t+1}.
    r = 1 everywhere; V (agent 0) = 1, 2, 3; V (agent 1) = 4, 0, 0; V_3 = 5 (multiplied out).
    Agent 0: δ = 1+1−1 = 1, 1+1.5−2 = 0.5, 1−3 = −2 → Â_2 = −2, Â_1 = 0.5 − 0.5 = 0, Â_0 = 1 + 0 = 1.
    Agent 1: δ = 1+0−4 = −3, 1+0−0 = 1, 1−0 = 1 → Â_2 = 1, Â_1 = 1 + 0.25 = 1.25, Â_0 = −3 + 0.3125 = −2.6875
    (were its death terminal, Â_0 would be δ_0 = 1 − 4 = −3)."""
    r = jnp.ones((3, 1, 2))
    v = jnp.array([[1.0, 4.0], [2.0, 0.0], [3.0, 0.0]])[:, None]
    next_v = jnp.concatenate([v[1:], jnp.full((1, 1, 2), 5.0)])
    term = jnp.array([0.0, 0.0, 1.0])[:, None, None]
    fn = ADVANTAGES["gae"]
    call = jax.jit(fn, static_argnums=(5, 6)) if jit else fn
    adv, ret = call(r, v, next_v, term > 0, term > 0, 0.5, 0.5)
    np.testing.assert_allclose(np.asarray(adv)[:, 0], [[1.0, -2.6875], [0.0, 1.25], [-2.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ret), np.asarray(adv + v), rtol=1e-6)


def test_an_update_runs_with_per_agent_resets(run):
    """The learning step (minibatches shuffled over agents, as the peer's) takes the [T, E, A] flags and stays
    finite."""
    tr, state = run["tr"], run["state"]
    learner, _, metrics = jax.jit(tr.learn)(state.learner, run["traj"], state.runner, run["runner"],
                                            jax.random.PRNGKey(2))
    assert int(metrics["nonfinite"]) == 0 and int(learner.updates) == 1


def test_default_is_env_and_leaves_the_timestep_alone():
    assert Config.build({}).done_scope == "env"
    tr = _trainer("env")
    _, ts = tr.env.reset(jax.random.PRNGKey(0))
    assert ts.final_active is None  # the default timestep's pytree is today's


@pytest.mark.parametrize("kw, match", [
    (dict(done_scope="agent", network="ff"), "network='ff' has none"),
    (dict(done_scope="env_or_agent", network="gru", env="pz_pursuit"), "host path"),
    (dict(done_scope="agent", network="gru", env="smax", algo="b2mapo"), "batch_partition=dag"),
    (dict(done_scope="peer"), "not one of env, agent, env_or_agent"),
])
def test_refusals(kw, match):
    with pytest.raises(ConfigError, match=match):
        Config.build(kw)


def test_refused_without_per_agent_deaths():
    with pytest.raises(ConfigError, match="needs per-agent deaths"):
        make_train(Config.build(dict(env="mpe_spread", network="gru", hidden=(8,), num_envs=2, rollout_length=4,
                                     done_scope="agent")))
