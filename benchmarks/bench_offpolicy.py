"""Throughput of the off-policy algorithms (MADDPG, MAAC, MAMD, MAMT) against the number of agents.

For each case (trustmarl's Spread and Pursuit with N agents, N in ``--agents``) and each algorithm the script
builds the config the CLI would build (``trustmarl train algo=<a> env=<e> ...``: algorithm defaults < preset <
the options here; Table 3's 12 envs, 8 steps per iteration (96 transitions), 4 gradient steps of batch 1024,
hidden 128), compiles the trainer's own pieces once and keeps the fastest of ``--repeats`` timed calls:

* ``collect env-steps/s``: one call of ``trainer.collect`` (``num_envs × collect_steps`` env steps with the
  behaviour policy, each transition added to the flashbax buffer) over its wall time;
* ``grad updates/s``: one call of ``trainer.learn`` (``gradient_steps`` full gradient steps: sample, the
  algorithm's ``before_step``, critic, actor, Polyak targets) over its wall time, divided into steps;
* ``iteration env-steps/s``: one whole ``trainer.update`` (collect, then the gradient steps, at the default ratio
  of 4 gradient steps per 96 transitions): the training throughput a run gets once learning has started.

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

from trustmarl.config import Config

ALGOS = ("maddpg", "maac", "mamd", "mamt")
AGENTS = (2, 8, 16)


def case_config(algo: str, env: str, n: int, extra: dict) -> Config:
    kw = {"algo": algo, "env": env, "progress": False, "total_env_steps": 20_000, **extra}
    if env == "pursuit":
        kw["env_options"] = json.dumps({"n_pursuers": n})
    else:
        kw["num_agents"] = n
    return Config.build(kw)


def best_of(fn, args, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best


def time_case(config: Config, repeats: int) -> dict:
    from trustmarl.trainers import make_train
    t = make_train(config)
    c = config
    state = jax.jit(t.init)(jax.random.PRNGKey(0))
    collect = jax.jit(t.collect)
    learn = jax.jit(t.learn)
    update = jax.jit(t.update)
    w = time.perf_counter()
    _, buf, _, _ = collect(state, jax.random.PRNGKey(1))
    # an iteration past the warm-up: the buffer holds transitions and the gradient steps run
    state = state._replace(buffer=buf, transitions=jax.numpy.int32(t.learn_start))
    learn(state.learner, buf, jax.random.PRNGKey(2))
    update(state)
    compile_s = time.perf_counter() - w
    steps = c.num_envs * c.collect_steps
    t_col = best_of(collect, (state, jax.random.PRNGKey(3)), repeats)
    t_learn = best_of(learn, (state.learner, buf, jax.random.PRNGKey(4)), repeats)
    t_upd = best_of(update, (state,), repeats)
    return {"num_agents": t.num_agents, "collect": steps / t_col, "grad": c.gradient_steps / t_learn,
            "iteration": steps / t_upd, "compile_s": compile_s}


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
    head = (f"| {'env':<8} | {'N':>3} | {'algorithm':<9} | {'collect env-steps/s':>19} | {'grad updates/s':>14} | "
            f"{'iteration env-steps/s':>21} | {'compile s':>9} |")
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|", flush=True)
    for env in args.envs:
        for n in args.agents:
            for algo in args.algos:
                r = time_case(case_config(algo, env, n, extra), args.repeats)
                print(f"| {env:<8} | {r['num_agents']:>3} | {algo:<9} | {r['collect']:>19,.0f} | {r['grad']:>14,.2f} | "
                      f"{r['iteration']:>21,.0f} | {r['compile_s']:>9.0f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
