"""Evaluating and rendering a trained policy from a run folder's checkpoint."""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from trustmarl.networks import apply_agents, distribution
from trustmarl.trainer import Trainer


def _act(trainer: Trainer, params, h, ts, reset, key, greedy: bool):
    """One decentralised action for every env and agent: ``ts`` fields [E, A, ...]."""
    x = trainer._with_id(ts.obs)
    h, out = apply_agents(trainer.actor, params, h, x[None], reset[None], ts.avail[None])
    out = out[0]
    if greedy:
        if trainer.spec.discrete:
            action = jnp.argmax(out, axis=-1)
        else:
            action = jnp.split(out, 2, axis=-1)[0]
    else:
        action = distribution(out, trainer.spec.discrete).sample(seed=key)
    if not trainer.spec.discrete:
        action = jnp.clip(action, trainer.spec.action_low, trainer.spec.action_high)
    return h, action


def evaluate(trainer: Trainer, actor_params, key: jax.Array, episodes: int = 32, greedy: bool = True) -> dict:
    """Run ``episodes`` episodes in parallel (one per env) and return mean return, win rate and length.

    Each env runs until its first episode ends (at most the env's time limit + 1 steps); the return is the
    team return (mean over agents of the summed rewards), as logged during training.
    """
    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1")
    env, A = trainer.env, trainer.num_agents
    H = trainer.hidden_size
    limit = trainer.spec.episode_limit + 1

    def run(key):
        k_reset, k_loop = jax.random.split(key)
        env_state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, episodes))
        h = jnp.zeros((episodes, A, H))
        reset = jnp.ones((episodes,), bool)
        rec = (jnp.zeros(episodes, bool), jnp.zeros(episodes), jnp.zeros(episodes), jnp.zeros(episodes))

        def step(carry, k):
            env_state, ts, h, reset, (seen, ret, won, length) = carry
            k_act, k_env = jax.random.split(k)
            h, action = _act(trainer, actor_params, h, ts, reset, k_act, greedy)
            env_state, ts = jax.vmap(env.step)(jax.random.split(k_env, episodes), env_state, action)
            ep = ts.episode
            first = ep.done & ~seen
            rec = (seen | ep.done, jnp.where(first, ep.returned_return, ret), jnp.where(first, ep.returned_won, won),
                   jnp.where(first, ep.returned_length, length))
            return (env_state, ts, h, ep.done, rec), None

        (_, _, _, _, rec), _ = jax.lax.scan(step, (env_state, ts, h, reset, rec), jax.random.split(k_loop, limit))
        return rec

    seen, ret, won, length = jax.device_get(jax.jit(run)(key))
    out = {"episodes": int(seen.sum()), "return_mean": float(np.mean(ret[seen])),
           "return_std": float(np.std(ret[seen])), "episode_length": float(np.mean(length[seen])),
           "greedy": greedy}
    if trainer.spec.has_win:
        out["win_rate"] = float(np.mean(won[seen]))
    return out


def episode_states(trainer: Trainer, actor_params, key: jax.Array, greedy: bool = True):
    """States of one episode of env 0 (inner JaxMARL states), with the keys and actions that stepped them."""
    env, A, H = trainer.env, trainer.num_agents, trainer.hidden_size
    k_reset, key = jax.random.split(key)
    env_state, ts = jax.vmap(env.reset)(k_reset[None])
    h, reset = jnp.zeros((1, A, H)), jnp.ones((1,), bool)
    act = jax.jit(lambda h, ts, reset, k: _act(trainer, actor_params, h, ts, reset, k, greedy))
    step = jax.jit(jax.vmap(env.step))
    seq = []
    for _ in range(trainer.spec.episode_limit + 1):
        key, k_act, k_env = jax.random.split(key, 3)
        h, action = act(h, ts, reset, k_act)
        inner = jax.tree.map(lambda x: x[0], env_state.env_state)
        actions = {a: action[0, i] for i, a in enumerate(trainer.spec.agents)}
        seq.append((k_env, inner, actions))
        env_state, ts = step(k_env[None], env_state, action)
        reset = ts.episode.done
        if bool(ts.episode.done[0]):
            break
    return seq


def render_gif(trainer: Trainer, actor_params, key: jax.Array, out: Path, greedy: bool = True) -> Path:
    """Draw one episode to a GIF with JaxMARL's visualisers (MPE and SMAX)."""
    import matplotlib
    matplotlib.use("Agg")
    from jaxmarl.viz.visualizer import SMAXVisualizer, Visualizer
    seq = episode_states(trainer, actor_params, key, greedy)
    inner_env = trainer.env.env
    if trainer.config.env == "smax":
        # SMAX ticks several world steps per env step; its visualiser expands (key, state, actions) triples.
        viz = SMAXVisualizer(inner_env, seq)
    elif trainer.config.env == "mpe_spread":
        viz = Visualizer(inner_env, [s for _, s, _ in seq])
    else:
        raise ValueError(f"render supports env=mpe_spread and env=smax, not {trainer.config.env!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viz.animate(save_fname=str(out), view=False)
    return out
