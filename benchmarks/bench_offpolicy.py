"""Throughput of the off-policy algorithms (MADDPG, MAAC, MAMD, MAMT, LOLA-DQN) against the number of agents.

For each case (trustmarl's Spread and Pursuit with N agents, N in ``--agents``) and each algorithm the script
builds the config the CLI would build (``trustmarl train algo=<a> env=<e> ...``: algorithm defaults < preset <
the options here; Table 3's 12 envs, 8 steps per iteration (96 transitions), 4 gradient steps of batch 1024,
hidden 128; a buffer of 1024 transitions), compiles the trainer's own pieces once and keeps the fastest of
``--repeats`` timed calls:

* ``collect env-steps/s``: one call of ``trainer.collect`` (``num_envs × collect_steps`` env steps with the
  behaviour policy, each transition added to the flashbax buffer) over its wall time;
* ``grad updates/s``: one call of ``trainer.learn`` (``gradient_steps`` full gradient steps: sample, the
  algorithm's ``before_step``, critic, actor, Polyak targets) over its wall time, divided into steps;
* ``iteration env-steps/s``: the env steps of one iteration over the time of one collection plus one learning
  phase (the default ratio of 4 gradient steps per 96 transitions), the training throughput once learning runs;
* the same three per CPU-second of this process (``time.process_time``, all threads): on a shared machine other
  processes take cores but not this process's CPU time, so these are steadier than the wall-time ones.

A case the algorithm refuses prints its one-line reason instead of a row: LOLA-DQN sums over every joint action
(``5^N`` on Spread), which limits it to N ≤ 5 there (Li et al. compare it on Spread only).

Run: ``python benchmarks/bench_offpolicy.py`` (every case; tens of minutes on 2 cores), or e.g.
``python benchmarks/bench_offpolicy.py --envs spread --agents 2 8 --algos maddpg maac --set batch_size=256``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax

from trustmarl.config import Config, ConfigError

ALGOS = ("maddpg", "maac", "mamd", "mamt", "lola_dqn")
AGENTS = (2, 8, 16)


def case_config(algo: str, env: str, n: int, extra: dict) -> Config:
    # A buffer of batch_size (1024) transitions: a jitted call that adds to a buffer it does not own copies the
    # whole buffer, which would time a memcpy of the storage instead of the collection (inside a training
    # chunk the buffer is carried by the scan, and the copy is once per chunk).
    kw = {"algo": algo, "env": env, "progress": False, "total_env_steps": 1024, **extra}
    if env == "pursuit":
        kw["env_options"] = json.dumps({"n_pursuers": n})
    else:
        kw["num_agents"] = n
    return Config.build(kw)


def best_of(fn, args, repeats: int) -> tuple[float, float]:
    """Fastest wall time and fastest process CPU time of ``repeats`` calls."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu


def time_case(config: Config, repeats: int) -> dict:
    from trustmarl.trainers import make_train
    t = make_train(config)
    c = config
    state = jax.jit(t.init)(jax.random.PRNGKey(0))
    collect = jax.jit(t.collect)
    learn = jax.jit(t.learn)
    w = time.perf_counter()
    _, buf, _, _ = collect(state, jax.random.PRNGKey(1))
    jax.block_until_ready(learn(state.learner, buf, jax.random.PRNGKey(2)))
    compile_s = time.perf_counter() - w
    steps = c.num_envs * c.collect_steps
    col_w, col_c = best_of(collect, (state, jax.random.PRNGKey(3)), repeats)
    lrn_w, lrn_c = best_of(learn, (state.learner, buf, jax.random.PRNGKey(4)), repeats)
    return {"num_agents": t.num_agents, "collect": (steps / col_w, steps / col_c),
            "grad": (c.gradient_steps / lrn_w, c.gradient_steps / lrn_c),
            "iteration": (steps / (col_w + lrn_w), steps / (col_c + lrn_c)), "compile_s": compile_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["spread", "pursuit"], choices=["spread", "pursuit"])
    parser.add_argument("--agents", type=int, nargs="+", default=list(AGENTS))
    parser.add_argument("--algos", nargs="+", default=list(ALGOS))
    parser.add_argument("--set", nargs="*", default=[], help="key=value for every run (e.g. batch_size=256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per piece; the fastest is kept")
    args = parser.parse_args()
    extra = {}
    for word in args.set:
        if "=" not in word:
            raise SystemExit(f"--set entry {word!r} is not key=value")
        k, v = word.split("=", 1)
        extra[k] = v
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPU cores, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    head = ("| env | N | algorithm | collect env-steps/s (per CPU-s) | grad updates/s (per CPU-s) | "
            "iteration env-steps/s (per CPU-s) | compile s |")
    print(head)
    print("|---|---|---|---|---|---|---|", flush=True)
    pair = lambda x, f: f"{x[0]:{f}} ({x[1]:{f}})"  # noqa: E731
    for env in args.envs:
        for n in args.agents:
            for algo in args.algos:
                try:
                    r = time_case(case_config(algo, env, n, extra), args.repeats)
                except ConfigError as err:
                    print(f"| {env} | {n} | {algo} | not run: {err} | | | |", flush=True)
                    continue
                print(f"| {env} | {r['num_agents']} | {algo} | {pair(r['collect'], ',.0f')} | {pair(r['grad'], '.2f')} | "
                      f"{pair(r['iteration'], ',.0f')} | {r['compile_s']:.0f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
