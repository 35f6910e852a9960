"""A short learning comparison of the off-policy algorithms on Spread with 2 agents (CPU-sized, not Table 10).

Every algorithm trains with its own defaults except for a CPU budget shared by all (``--set`` adds more):
8 envs × 4 steps per iteration, 1 gradient step of batch 256 per iteration, hidden 64-64, ``--steps`` env
steps, ``--seeds`` seeds vmapped in one program (seed ``i`` = key ``i`` of ``split(PRNGKey(0), seeds)``, as the
CLI's ``num_seeds``). Each trained greedy policy is then evaluated on 64 fresh episodes; the table gives the mean ±
std over seeds of that return, the mean over seeds of the training return in the first and last 10 % of
iterations, and the wall time. ``random`` is the uniform random policy's return on the same evaluation.

Run: ``python benchmarks/offpolicy_learning.py`` (all four algorithms, about 10 minutes on 2 cores) or e.g.
``python benchmarks/offpolicy_learning.py --algos maddpg mamd --steps 60000 --seeds 4``.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import numpy as np

from trustmarl.config import Config

CPU_BUDGET = {"num_envs": 8, "collect_steps": 4, "gradient_steps": 1, "batch_size": 256, "learning_starts": 512,
              "hidden": (64, 64)}


def run(algo: str, steps: int, seeds: int, extra: dict) -> dict:
    from trustmarl.evaluation import evaluate
    from trustmarl.trainers import make_train
    c = Config.build({"algo": algo, "env": "spread", "num_agents": 2, "total_env_steps": steps,
                      "num_seeds": seeds, **CPU_BUDGET, **extra})
    t = make_train(c)
    keys = jax.random.split(jax.random.PRNGKey(c.seed), seeds)
    w = time.perf_counter()
    state, m = jax.jit(jax.vmap(t))(keys)
    jax.block_until_ready(state)
    wall = time.perf_counter() - w
    r = np.asarray(m["return_mean"])  # [S, iterations]
    k = max(r.shape[1] // 10, 1)
    evals = [evaluate(t, jax.tree.map(lambda x: x[s], t.policy_params(state)), jax.random.PRNGKey(100 + s),
                      episodes=64)["return_mean"] for s in range(seeds)]
    return {"eval": np.asarray(evals), "first": np.nanmean(r[:, :k]), "last": np.nanmean(r[:, -k:]), "wall": wall,
            "trainer": t}


def random_return(trainer) -> float:
    from trustmarl.evaluation import evaluate
    params = trainer.policy_params(trainer.init(jax.random.PRNGKey(0)))
    zero = jax.tree.map(jnp.zeros_like, params)  # all-zero logits: the uniform policy
    return float(evaluate(trainer, zero, jax.random.PRNGKey(7), episodes=256, greedy=False)["return_mean"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["maddpg", "maac", "mamd", "mamt"])
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="key=value for every run")
    args = parser.parse_args()
    extra = dict(w.split("=", 1) for w in args.set)
    print(f"Spread N=2, {args.steps:,} env steps, {args.seeds} seeds, budget {CPU_BUDGET} {extra}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print("| algorithm | greedy eval return (mean ± std over seeds) | train return first 10 % | last 10 % | wall s |")
    print("|---|---|---|---|---|", flush=True)
    trainer = None
    for algo in args.algos:
        r = run(algo, args.steps, args.seeds, extra)
        trainer = r["trainer"]
        e = r["eval"]
        print(f"| {algo} | {e.mean():.2f} ± {e.std():.2f} ({', '.join(f'{x:.2f}' for x in e)}) | {r['first']:.2f} | "
              f"{r['last']:.2f} | {r['wall']:.0f} |", flush=True)
    if trainer is not None:
        print(f"| random (uniform policy, 256 episodes) | {random_return(trainer):.2f} | | | |", flush=True)


if __name__ == "__main__":
    main()
