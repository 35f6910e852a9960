"""A short learning comparison of on-policy algorithms on Spread with 2 agents (CPU-sized): MA-PPO (Li et al.'s
baseline, MAPPO with an attention critic) against MAPPO, and MA-PPO with the global-state critic.

Each row is an algorithm with optional ``key=value`` overrides (``ma_ppo:critic_input=global``); every row
shares a CPU budget (``--set`` adds more): 8 envs × 128 steps per update, hidden 64-64, ``--steps`` env steps,
``--seeds`` seeds vmapped in one program (seed ``i`` = key ``i`` of ``split(PRNGKey(0), seeds)``, as the CLI's
``num_seeds``). The trained greedy policy (most likely actions) is evaluated on 64 fresh episodes per seed —
the protocol of ``benchmarks/offpolicy_learning.py``, so the two tables' returns compare — and the table gives
the mean ± std over seeds, the training return of the first and last 10 % of updates (mean over seeds), the
wall time and the process CPU time of the run.

Run: ``python benchmarks/onpolicy_learning.py`` (about 10 CPU-minutes) or e.g.
``python benchmarks/onpolicy_learning.py --rows ma_ppo mappo --steps 200000 --seeds 4``.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import numpy as np

from trustmarl.config import Config

CPU_BUDGET = {"num_envs": 8, "rollout_length": 128, "hidden": (64, 64)}


def parse_row(row: str) -> tuple[str, dict]:
    """``algo`` or ``algo:key=value,key=value`` → (algo, overrides)."""
    algo, _, rest = row.partition(":")
    return algo, dict(kv.split("=", 1) for kv in rest.split(",") if kv)


def run(row: str, steps: int, seeds: int, extra: dict) -> dict:
    from trustmarl.evaluation import evaluate
    from trustmarl.trainers import make_train
    algo, over = parse_row(row)
    c = Config.build({"algo": algo, "env": "spread", "num_agents": 2, "total_env_steps": steps,
                      "num_seeds": seeds, **CPU_BUDGET, **extra, **over})
    t = make_train(c)
    keys = jax.random.split(jax.random.PRNGKey(c.seed), seeds)
    w, cpu = time.perf_counter(), time.process_time()
    state, m = jax.jit(jax.vmap(t))(keys)
    jax.block_until_ready(state)
    wall, cpu = time.perf_counter() - w, time.process_time() - cpu
    r = np.asarray(m["return_mean"])  # [S, updates]
    k = max(r.shape[1] // 10, 1)
    evals = [evaluate(t, jax.tree.map(lambda x: x[s], t.policy_params(state)), jax.random.PRNGKey(100 + s),
                      episodes=64)["return_mean"] for s in range(seeds)]
    return {"eval": np.asarray(evals), "first": np.nanmean(r[:, :k]), "last": np.nanmean(r[:, -k:]), "wall": wall,
            "cpu": cpu, "updates": r.shape[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["ma_ppo", "ma_ppo:critic_input=global", "mappo"])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], help="key=value for every row")
    args = parser.parse_args()
    extra = dict(w.split("=", 1) for w in args.set)
    print(f"Spread N=2, {args.steps:,} env steps, {args.seeds} seeds, budget {CPU_BUDGET} {extra}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print("| row | updates | greedy eval return (mean ± std over seeds) | train return first 10 % | last 10 % | "
          "wall s | CPU s |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for row in args.rows:
        r = run(row, args.steps, args.seeds, extra)
        e = r["eval"]
        print(f"| {row} | {r['updates']} | {e.mean():.2f} ± {e.std():.2f} ({', '.join(f'{x:.2f}' for x in e)}) | "
              f"{r['first']:.2f} | {r['last']:.2f} | {r['wall']:.0f} | {r['cpu']:.0f} |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
