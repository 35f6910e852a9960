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


def _draw_mpe(ax, env, state):
    import matplotlib.patches as mpatches
    n = env.num_agents
    for i, (pos, rad) in enumerate(zip(np.asarray(state.p_pos), np.asarray(env.rad))):
        colour = "tab:blue" if i < n else "0.6"
        ax.add_patch(mpatches.Circle(pos, float(rad), color=colour, alpha=0.9 if i < n else 0.6))
    lim = max(1.5, float(np.abs(np.asarray(state.p_pos)).max()) + 0.3)  # keep wandering agents in view
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)


def _draw_smax(ax, env, state):
    smax = env._env if hasattr(env, "_env") else env
    st = state.state if hasattr(state, "state") else state
    pos, alive = np.asarray(st.unit_positions), np.asarray(st.unit_alive)
    health = np.asarray(st.unit_health) / np.asarray(smax.unit_type_health)[np.asarray(st.unit_types)]
    teams = np.asarray(st.unit_teams)
    for team, colour in ((0, "tab:blue"), (1, "tab:red")):
        m = (teams == team) & alive
        ax.scatter(pos[m, 0], pos[m, 1], s=40 + 160 * health[m], c=colour, edgecolors="k")
        d = (teams == team) & ~alive
        ax.scatter(pos[d, 0], pos[d, 1], marker="x", c=colour, alpha=0.5)
    ax.set_xlim(0, smax.map_width)
    ax.set_ylim(0, smax.map_height)


def render_gif(trainer: Trainer, actor_params, key: jax.Array, out: Path, greedy: bool = True,
               fps: int = 8) -> Path:
    """Draw one episode of env 0 to a GIF (MPE spread: agents blue, landmarks grey; SMAX: allies blue,
    enemies red, marker size by health, dead units as crosses).

    JaxMARL 0.2.0's own visualisers call ``init_render`` methods its MPE and SMAX envs no longer have, so
    frames are drawn here from the env state with matplotlib and written with imageio.
    """
    import imageio.v2 as imageio
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    draw = {"mpe_spread": _draw_mpe, "smax": _draw_smax}.get(trainer.config.env)
    if draw is None:
        raise ValueError(f"render supports env=mpe_spread and env=smax, not {trainer.config.env!r}")
    seq = episode_states(trainer, actor_params, key, greedy)
    frames = []
    for t, (_, state, _) in enumerate(seq):
        fig = Figure(figsize=(4, 4), dpi=80)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        draw(ax, trainer.env.env, state)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{trainer.spec.name}  t={t}", fontsize=9)
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(out, frames, duration=1.0 / fps, loop=0)
    return out
