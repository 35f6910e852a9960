"""Throughput of the JAX Pursuit env against PettingZoo's ``pursuit_v5``.

Both sides take uniformly random actions for the default game (16x16, 8
pursuers, 30 evaders, 500 cycles). The JAX side runs ``jax.vmap`` over
``--num-envs`` envs inside one jitted ``lax.scan``; compilation is done
before timing. Three JAX variants:

* ``step, synced``: ``Pursuit.step`` (auto-reset), every env starting
  together, so all episodes end on the same cycle; with ``--steps 1000`` each
  env plays two full episodes and the reset cost is included once per
  episode, as in training from a common reset.
* ``step, staggered``: the same, with the envs' cycle counters spread over
  the episode so that on almost every step some env of the batch resets (the
  worst case for the lazy spawn).
* ``step_env``: no auto-reset at all (the pure transition).

The PettingZoo side is ``pursuit_v5.parallel_env()`` in a Python loop with
numpy random actions, resetting when the episode ends.

Run: ``python benchmarks/bench_pursuit.py [--num-envs 256 1024] [--steps 1000]``
(needs ``pettingzoo[sisl]`` for the reference side).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from trustmarl.envs.pursuit import Pursuit, make_pursuit


def jax_rollout(env: Pursuit, num_envs: int, steps: int, mode: str):
    """Jitted function: key -> total reward, rolling ``steps`` batched steps."""

    def run(key):
        k_reset, k_run = jax.random.split(key)
        _, state = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))
        if mode == "staggered":
            state = state.replace(
                step=(jnp.arange(num_envs, dtype=jnp.int32) * env.max_cycles) // num_envs
            )

        def body(carry, key):
            state, total = carry
            k_act, k_env = jax.random.split(key)
            acts = jax.random.randint(k_act, (env.num_agents, num_envs), 0, 5)
            act_dict = {a: acts[i] for i, a in enumerate(env.agents)}
            keys = jax.random.split(k_env, num_envs)
            fn = env.step_env if mode == "step_env" else env.step
            _, state, rew, _, _ = jax.vmap(fn)(keys, state, act_dict)
            return (state, total + rew[env.agents[0]].sum()), None

        (_, total), _ = jax.lax.scan(body, (state, jnp.float32(0)), jax.random.split(k_run, steps))
        return total

    return jax.jit(run)


def time_jax(env: Pursuit, num_envs: int, steps: int, mode: str, repeats: int) -> float:
    fn = jax_rollout(env, num_envs, steps, mode)
    fn(jax.random.key(0)).block_until_ready()  # compile (excluded)
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(jax.random.key(r + 1)).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return num_envs * steps / best


def time_pettingzoo(seconds: float) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pettingzoo.sisl import pursuit_v5

        env = pursuit_v5.parallel_env()
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        env.step({a: int(rng.integers(5)) for a in env.agents})
        n += 1
        if not env.agents:
            env.reset()
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=1000, help="scan length per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls; the best is kept")
    parser.add_argument("--pz-seconds", type=float, default=10.0)
    parser.add_argument(
        "--modes", nargs="+", default=["synced", "staggered", "step_env"],
        choices=["synced", "staggered", "step_env"],
    )
    args = parser.parse_args()

    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPU cores, "
        f"python {platform.python_version()}"
    )
    pz = time_pettingzoo(args.pz_seconds)
    print(f"PettingZoo pursuit_v5 parallel_env, random actions: {pz:,.0f} env-steps/s")
    env = make_pursuit()
    labels = {"synced": "step, synced", "staggered": "step, staggered", "step_env": "step_env"}
    print(f"{'variant':<18}{'envs':>6}{'env-steps/s':>14}{'x PettingZoo':>14}")
    for num_envs in args.num_envs:
        for mode in args.modes:
            rate = time_jax(env, num_envs, args.steps, mode, args.repeats)
            print(f"{labels[mode]:<18}{num_envs:>6}{rate:>14,.0f}{rate / pz:>13,.0f}x")


if __name__ == "__main__":
    main()
