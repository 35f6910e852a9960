"""How the cost of training grows with the number of agents: one table, every algorithm, Spread and SMAX.

For each case (trustmarl's Spread with N agents, SMAX maps) and each algorithm (every entry of
``trustmarl.algos.ALGORITHMS`` unless ``--algos`` says otherwise) the script builds the config the CLI
would build (``trustmarl train algo=<a> env=<e> ...``: algorithm defaults < preset < the options here),
compiles one update, then runs single-update chunks through the CLI's own driver
(``trustmarl.runtime.loop.make_driver``) and keeps the fastest one:

* ``env-steps/s``: env steps of one update (``num_envs * rollout_length``) over its wall time;
* ``agent-steps/s``: the same times N (each env step moves every agent once);
* ``env-steps/CPU-s``: env steps over the process's CPU time (all threads) for that update; on a shared
  machine this is steadier than wall time, since other processes take cores but not this process's CPU time;
* ``x IPPO``: the algorithm's throughput over IPPO's in the same case (wall; CPU in brackets);
* ``setup``: network, envs x rollout length, epochs x minibatches of the run (an algorithm without a preset for
  the env runs with the config defaults, so compare rows with the same setup);
* ``critic in``: the width of one agent's critic input (local observation for IPPO, the env's global state
  for MAPPO and JR-PPO), the number that decides how the critic's cost grows with N.

The ``random`` row of each case is the env's ceiling: random valid actions, ``num_envs`` envs stepped by the
adapter's batch step inside one jitted ``lax.scan`` of ``rollout_length`` steps (no network, no global state).

An algorithm entry may carry config overrides: ``mappo[global_state=env]`` or
``mappo[global_state=concat_obs,critic_input=global]``.

Run: ``python benchmarks/bench_agents.py`` (all cases; tens of minutes on 2 cores), or e.g.
``python benchmarks/bench_agents.py --spread 3 27 --smax --algos ippo mappo --max-updates 5``.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp

from trustmarl.config import Config

SPREAD_AGENTS = (3, 9, 27, 100)
SMAX_MAPS = ("3m", "10m_vs_11m", "27m_vs_30m")


def parse_algo(text: str) -> tuple[str, dict]:
    """``"mappo[global_state=env,lr=1e-3]"`` -> ``("mappo", {"global_state": "env", "lr": "1e-3"})``."""
    m = re.fullmatch(r"([\w.]+)(?:\[(.*)\])?", text.strip())
    if not m:
        raise SystemExit(f"--algos entry {text!r} is not name or name[key=value,...]")
    extra = {}
    if m.group(2):
        for word in m.group(2).split(","):
            if "=" not in word:
                raise SystemExit(f"--algos entry {text!r}: {word!r} is not key=value")
            k, v = word.split("=", 1)
            extra[k.strip()] = v.strip()
    return m.group(1), extra


def parse_set(words: list[str]) -> dict:
    out = {}
    for w in words or []:
        if "=" not in w:
            raise SystemExit(f"--set/--spread-set/--smax-set entry {w!r} is not key=value")
        k, v = w.split("=", 1)
        out[k] = v
    return out


def time_training(config: Config, min_updates: int, max_updates: int, min_seconds: float,
                  max_gib: float) -> dict:
    """Compile one update with the CLI's driver, then time single-update chunks; the fastest is kept.
    A run whose rollout critic inputs alone (values and pre-reset values, float32) would take more than
    ``max_gib`` GiB is not run (``{"skipped": reason}``)."""
    from trustmarl.runtime.loop import make_driver
    driver = make_driver(config)
    trainer = driver.trainer
    steps = trainer.derived.steps_per_update * driver.num_seeds
    gib = 2 * 4 * steps * trainer.num_agents * trainer.critic_in_dim / 2 ** 30
    if gib > max_gib:
        return {"skipped": f"critic inputs of one rollout alone: {gib:,.0f} GiB", "critic_in": trainer.critic_in_dim,
                "num_agents": trainer.num_agents}
    state = driver.init()
    t = time.perf_counter()
    driver.compile(state, 1)
    compile_s = time.perf_counter() - t
    best_wall, best_cpu, runs, spent = float("inf"), float("inf"), 0, 0.0
    while runs < min_updates or (runs < max_updates and spent < min_seconds):
        w, c = time.perf_counter(), time.process_time()
        state, _ = driver.run(state, 1)
        w, c = time.perf_counter() - w, time.process_time() - c
        best_wall, best_cpu = min(best_wall, w), min(best_cpu, c)
        spent += w
        runs += 1
    driver.close()
    return {"env_steps_per_s": steps / best_wall, "env_steps_per_cpu_s": steps / max(best_cpu, 1e-9),
            "critic_in": trainer.critic_in_dim, "setup": setup(config), "actor_in": trainer.actor_in_dim,
            "updates": runs, "compile_s": compile_s, "num_agents": trainer.num_agents}


def setup(c: Config) -> str:
    """The settings that decide the cost of an update: network and widths, envs x rollout length, epochs x
    minibatches (algorithms without a preset for an env train with the config defaults)."""
    net = f"{c.network}{'-'.join(map(str, c.hidden))}"
    return f"{net} {c.num_envs}x{c.rollout_length} {c.update_epochs}x{c.num_minibatches}"


def time_ceiling(config: Config, repeats: int = 3) -> dict:
    """Random-action env-steps/s of the config's env: ``num_envs`` envs, ``rollout_length`` steps per call."""
    from trustmarl.envs.from_config import build_env
    env = build_env(config)
    env.compute_state = False  # the raw env: no critic state (what IPPO's rollouts step)
    E, T = config.num_envs, config.rollout_length

    def run(key):
        k_reset, k_run = jax.random.split(key)
        astate, ts = jax.vmap(env.reset)(jax.random.split(k_reset, E))

        def body(carry, k):
            astate, ts, total = carry
            k_act, k_env = jax.random.split(k)
            acts = jax.vmap(env.random_actions)(jax.random.split(k_act, E), ts.avail)
            astate, ts = env.step_batch(jax.random.split(k_env, E), astate, acts)
            return (astate, ts, total + ts.reward.sum()), None

        (_, _, total), _ = jax.lax.scan(body, (astate, ts, jnp.float32(0)), jax.random.split(k_run, T))
        return total

    fn = jax.jit(run)
    fn(jax.random.PRNGKey(0)).block_until_ready()
    best = float("inf")
    for r in range(repeats):
        t = time.perf_counter()
        fn(jax.random.PRNGKey(r + 1)).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return {"env_steps_per_s": E * T / best, "num_agents": env.spec.num_agents}


def main() -> None:
    from trustmarl.algos import ALGORITHMS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spread", type=int, nargs="*", default=list(SPREAD_AGENTS),
                        help="Spread agent counts (none: skip Spread)")
    parser.add_argument("--smax", nargs="*", default=list(SMAX_MAPS), help="SMAX maps (none: skip SMAX)")
    parser.add_argument("--algos", nargs="+",  # the on-policy family (off-policy: bench_offpolicy.py)
                        default=[a for a, x in ALGORITHMS.items() if x.family == "on_policy"],
                        help="algorithms, optionally with overrides: mappo[global_state=env]")
    parser.add_argument("--set", nargs="*", default=[], help="key=value for every run (e.g. num_envs=16)")
    parser.add_argument("--spread-set", nargs="*", default=[], help="key=value for Spread runs only")
    parser.add_argument("--smax-set", nargs="*", default=[], help="key=value for SMAX runs only")
    parser.add_argument("--min-updates", type=int, default=2, help="timed updates per run, at least")
    parser.add_argument("--max-updates", type=int, default=10, help="timed updates per run, at most")
    parser.add_argument("--min-seconds", type=float, default=5.0,
                        help="keep timing updates (up to --max-updates) until this much wall time is spent")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the random-action rows")
    parser.add_argument("--max-gib", type=float, default=6.0,
                        help="skip a run whose rollout critic inputs alone would need more GiB than this")
    args = parser.parse_args()

    common = parse_set(args.set)
    cases = [(f"spread N={n}", {"env": "spread", "num_agents": n, **parse_set(args.spread_set)}) for n in args.spread]
    cases += [(f"smax {m}", {"env": "smax", "map": m, **parse_set(args.smax_set)}) for m in args.smax]
    algos = [(a, *parse_algo(a)) for a in args.algos]

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPU cores, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    head = (f"| {'case':<18} | {'N':>3} | {'algorithm':<32} | {'setup':<20} | {'critic in':>9} | "
            f"{'env-steps/s':>11} | {'agent-steps/s':>13} | {'env-steps/CPU-s':>15} | {'x IPPO (CPU)':>14} |")
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|", flush=True)
    for label, env_kw in cases:
        ippo = None
        for name, algo, extra in algos:
            overrides = {"algo": algo, **env_kw, **common, **extra, "progress": False, "stall_timeout": 0}
            r = time_training(Config.build(overrides), args.min_updates, args.max_updates, args.min_seconds,
                              args.max_gib)
            if "skipped" in r:
                print(f"| {label:<18} | {r['num_agents']:>3} | {name:<32} | {'':<20} | {r['critic_in']:>9} | "
                      f"not run: {r['skipped']} |", flush=True)
                continue
            if algo == "ippo" and not extra:
                ippo = r
            ratio = "" if ippo is None else (f"{r['env_steps_per_s'] / ippo['env_steps_per_s']:.2f} "
                                             f"({r['env_steps_per_cpu_s'] / ippo['env_steps_per_cpu_s']:.2f})")
            n = r["num_agents"]
            print(f"| {label:<18} | {n:>3} | {name:<32} | {r['setup']:<20} | {r['critic_in']:>9} | "
                  f"{r['env_steps_per_s']:>11,.0f} | "
                  f"{r['env_steps_per_s'] * n:>13,.0f} | {r['env_steps_per_cpu_s']:>15,.0f} | {ratio:>14} |",
                  flush=True)
        if not args.no_ceiling:
            base = {"algo": "ippo", **env_kw, **common, "progress": False}
            r = time_ceiling(Config.build(base))
            n = r["num_agents"]
            print(f"| {label:<18} | {n:>3} | {'random (env ceiling)':<32} | {'':<20} | {'':>9} | "
                  f"{r['env_steps_per_s']:>11,.0f} | "
                  f"{r['env_steps_per_s'] * n:>13,.0f} | {'':>15} | {'':>14} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
