"""The off-policy family on the host path: Python environments (PettingZoo, GRF) stepped in worker processes by
:class:`trustmarl.envs.host_vector.HostVectorEnv`, the policy step, the buffer insert and the learning phase
jitted (the trainer's own :meth:`~trustmarl.trainers.off_policy.OffPolicyTrainer.act`, the flashbax ``add`` and
:meth:`~trustmarl.trainers.off_policy.OffPolicyTrainer.learn_phase`, the very function the JAX path runs after
its collection). One seed. The checkpointed state is the learner, the buffer, the key chain and the counters;
env states live in the workers and are not checkpointed (a resumed run starts fresh episodes).

The driver interface is the run loop's (:mod:`trustmarl.runtime.drivers`): ``init``, ``compile``, ``run``,
``trainer``, ``num_seeds``, ``close``.
"""
from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np


class OffHostState(NamedTuple):
    """What an off-policy host run checkpoints (seed axis of 1)."""

    learner: Any
    buffer: Any
    rng: jax.Array
    update: jax.Array  # int32, iterations done
    transitions: jax.Array  # int32, transitions stored


class OffPolicyHostDriver:
    """``collect_steps`` host env steps per iteration (each adding ``num_envs`` transitions), then the jitted
    learning phase."""

    def __init__(self, config, env_fn: Callable[[], Any], *, async_: bool = True,
                 episode_limit: Optional[int] = None, context: Optional[str] = "spawn",
                 num_envs: Optional[int] = None):
        from trustmarl.runtime.drivers import open_host_envs
        c = config
        self.global_state, self.venv, self.trainer = open_host_envs(c, env_fn, async_, episode_limit, context,
                                                                    num_envs)
        self.num_seeds = 1
        self.env_s = 0.0
        t = self.trainer
        self._act = jax.jit(lambda p, obs, avail, k: t.act(p, None, obs, avail, None,
                                                           t.draw_noise(k, (obs.shape[0],))).action)
        self._env_action = jax.jit(t.env_action)  # continuous: [-1, 1] onto the env's box
        self._add = jax.jit(t.buffer.add, donate_argnums=0)
        self._learn = jax.jit(t.learn_phase)
        self._ts = None

    def init(self) -> OffHostState:
        t = self.trainer
        key = jax.random.PRNGKey(t.config.seed)
        key, k_init = jax.random.split(key)
        state = OffHostState(t.init_learner(k_init), t.buffer.init(t._item()), key, jnp.zeros((), jnp.int32),
                             jnp.zeros((), jnp.int32))
        return jax.tree.map(lambda x: x[None], state)

    def compile(self, state, n: int) -> bool:
        return False  # compiled on the first call; the loop counts the first update's time as compile time

    def run(self, state: OffHostState, n: int):
        from trustmarl.trainers.off_policy import CollectTrace, Experience
        t = self.trainer
        c = t.config
        if self._ts is None:
            self._ts = self.venv.reset(seed=c.seed)
        ts = self._ts
        st = jax.tree.map(lambda x: x[0], state)
        learner, buf, key, count = st.learner, st.buffer, st.rng, int(st.transitions)
        act_dtype = np.dtype(t.head.action_dtype)  # int32 indices, or float32 vectors in [-1, 1] (continuous)
        history = []
        for _ in range(n):
            rows = []
            for _step in range(c.collect_steps):
                key, k_act = jax.random.split(key)
                action = np.asarray(self._act(learner.actor_params, ts.obs, ts.avail, k_act))
                te = time.perf_counter()
                nts = self.venv.step(np.asarray(self._env_action(action)))
                self.env_s += time.perf_counter() - te
                ended = (np.asarray(nts.terminated) | np.asarray(nts.truncated))[:, None, None]
                exp = Experience(np.asarray(ts.obs, np.float32), np.asarray(ts.avail, bool), action.astype(act_dtype),
                                 np.asarray(nts.reward, np.float32), np.asarray(nts.final_obs, np.float32),
                                 np.where(ended, True, np.asarray(nts.avail, bool)),
                                 np.asarray(nts.terminated, np.float32), np.asarray(ts.active, bool))
                buf = self._add(buf, exp)
                ep = nts.episode
                rows.append((ep.done, ep.returned_return, np.asarray(ep.returned_length, np.float32),
                             ep.returned_won, nts.reward,
                             np.all(np.isfinite(nts.obs)) & np.all(np.isfinite(nts.reward))))
                ts = nts
            count += c.collect_steps * c.num_envs
            trace = CollectTrace(*(np.stack([np.asarray(r[i]) for r in rows]) for i in range(6)))
            key, k_learn = jax.random.split(key)
            learner, metrics = self._learn(learner, buf, jnp.int32(count), trace, k_learn)
            history.append(jax.device_get(metrics))
        self._ts = ts
        new = OffHostState(learner, buf, key, st.update + n, jnp.int32(count))
        metrics = {k: np.stack([np.asarray(m[k]) for m in history])[None] for k in history[0]}
        return jax.tree.map(lambda x: x[None], new), metrics

    def close(self):
        self.venv.close()
