"""Evaluating and rendering a trained policy from a run folder's checkpoint (JAX envs and host-path envs).

Every action comes from the trainer's one public policy step, :meth:`act` of the trainer protocol (the
same function the rollout and the host loop use): greedy (most likely action / Gaussian mean) or sampled.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def _policy(trainer, actor_params, greedy: bool):
    """``(hidden, obs, avail, reset, key) -> (hidden, env action)`` for every env and agent ``[E, A, ...]``."""
    def step(h, obs, avail, reset, key):
        noise = trainer.draw_noise(key, (obs.shape[0],))
        pol = trainer.act(actor_params, h, obs, avail, reset, noise, greedy=greedy)
        return pol.hidden, trainer.env_action(pol.action)
    return step


def _summary(trainer, ret, won, length) -> dict:
    out = {"episodes": int(len(ret)), "return_mean": float(np.mean(ret)), "return_std": float(np.std(ret)),
           "episode_length": float(np.mean(length))}
    if trainer.spec.has_win:
        out["win_rate"] = float(np.mean(won))
    return out


def evaluate(trainer, actor_params, key: jax.Array, episodes: int = 32, greedy: bool = True) -> dict:
    """Run ``episodes`` episodes of a JAX env in parallel (one per env); mean return, win rate and length.

    Each env runs until its first episode ends (at most the env's time limit + 1 steps); the return is the
    team return (mean over agents of the summed rewards), as logged during training.
    """
    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1")
    env = trainer.env
    limit = trainer.spec.episode_limit + 1
    policy = _policy(trainer, actor_params, greedy)

    def run(key):
        k_reset, k_loop = jax.random.split(key)
        env_state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, episodes))
        h = trainer.init_hidden(episodes)
        reset = jnp.ones((episodes,), bool)
        rec = (jnp.zeros(episodes, bool), jnp.zeros(episodes), jnp.zeros(episodes), jnp.zeros(episodes))

        def step(carry, k):
            env_state, ts, h, reset, (seen, ret, won, length) = carry
            k_act, k_env = jax.random.split(k)
            h, action = policy(h, ts.obs, ts.avail, reset, k_act)
            env_state, ts = jax.vmap(env.step)(jax.random.split(k_env, episodes), env_state, action)
            ep = ts.episode
            first = ep.done & ~seen
            rec = (seen | ep.done, jnp.where(first, ep.returned_return, ret), jnp.where(first, ep.returned_won, won),
                   jnp.where(first, ep.returned_length, length))
            return (env_state, ts, h, ep.done, rec), None

        (_, _, _, _, rec), _ = jax.lax.scan(step, (env_state, ts, h, reset, rec), jax.random.split(k_loop, limit))
        return rec

    seen, ret, won, length = jax.device_get(jax.jit(run)(key))
    return {**_summary(trainer, ret[seen], won[seen], length[seen]), "greedy": greedy}


def evaluate_host(trainer, actor_params, venv, key: jax.Array, episodes: int = 32, greedy: bool = True) -> dict:
    """The same for a host-path env: ``venv`` (a :class:`~trustmarl.envs.host_vector.HostVectorEnv`) is
    stepped until ``episodes`` episodes have ended; every env's finished episodes count."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1")
    policy = jax.jit(_policy(trainer, actor_params, greedy))
    E = venv.num_envs
    ts = venv.reset(seed=int(jax.random.randint(key, (), 0, 2 ** 30)))
    h, reset = trainer.init_hidden(E), np.ones(E, bool)
    rets, wons, lengths = [], [], []
    max_steps = (trainer.spec.episode_limit + 1) * (episodes // E + 2)
    for _ in range(max_steps):
        key, k = jax.random.split(key)
        h, action = policy(h, ts.obs, ts.avail, reset, k)
        ts = venv.step(np.asarray(action))
        reset = ts.terminated | ts.truncated
        ep = ts.episode
        for e in np.flatnonzero(ep.done):
            rets.append(ep.returned_return[e])
            wons.append(ep.returned_won[e])
            lengths.append(ep.returned_length[e])
        if len(rets) >= episodes:
            break
    rets, wons, lengths = (np.asarray(x[:episodes], np.float64) for x in (rets, wons, lengths))
    return {**_summary(trainer, rets, wons, lengths), "greedy": greedy}


def episode_states(trainer, actor_params, key: jax.Array, greedy: bool = True):
    """States of one episode of env 0 (inner JaxMARL states), with the keys and actions that stepped them."""
    env = trainer.env
    k_reset, key = jax.random.split(key)
    env_state, ts = jax.vmap(env.reset)(k_reset[None])
    h, reset = trainer.init_hidden(1), jnp.ones((1,), bool)
    act = jax.jit(_policy(trainer, actor_params, greedy))
    step = jax.jit(jax.vmap(env.step))
    seq = []
    for _ in range(trainer.spec.episode_limit + 1):
        key, k_act, k_env = jax.random.split(key, 3)
        h, action = act(h, ts.obs, ts.avail, reset, k_act)
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


def render_gif(trainer, actor_params, key: jax.Array, out: Path, greedy: bool = True,
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
        raise ValueError(f"render supports env=mpe_spread, env=smax and host-path envs that draw "
                         f"(render_mode='rgb_array'), not {trainer.config.env!r}")
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


def render_host_gif(trainer, actor_params, env_fn: Callable[..., Any], key: jax.Array, out: Path,
                    greedy: bool = True, fps: int = 8) -> Path:
    """One episode of a host-path env drawn by the env itself (PettingZoo ``render_mode="rgb_array"``)."""
    import imageio.v2 as imageio
    from trustmarl.envs.host_vector import HostVectorEnv

    def drawing_env():
        return env_fn(render_mode="rgb_array")

    try:
        venv = HostVectorEnv(drawing_env, 1, global_state=trainer.env.global_state_kind, async_=False,
                             episode_limit=trainer.spec.episode_limit)
    except TypeError as err:
        raise ValueError(f"env {trainer.spec.name!r} cannot draw (no render_mode='rgb_array'): {err}") from None
    policy = jax.jit(_policy(trainer, actor_params, greedy))
    frames = []
    try:
        ts = venv.reset(seed=int(jax.random.randint(key, (), 0, 2 ** 30)))
        penv = venv.vec.envs[0].penv
        h, reset = trainer.init_hidden(1), np.ones(1, bool)
        for _ in range(trainer.spec.episode_limit + 1):
            frame = penv.render()
            if frame is None:
                raise ValueError(f"env {trainer.spec.name!r} returned no frame from render()")
            frames.append(np.asarray(frame)[..., :3])
            key, k = jax.random.split(key)
            h, action = policy(h, ts.obs, ts.avail, reset, k)
            ts = venv.step(np.asarray(action))
            reset = ts.terminated | ts.truncated
            if bool(ts.episode.done[0]):
                break
    finally:
        venv.close()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(out, frames, duration=1.0 / fps, loop=0)
    return out
