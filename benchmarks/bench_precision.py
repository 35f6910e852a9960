"""precision=bf16 against the default float32: trustmarl's throughput at the peer's settings (bench_peer.py's cases).

For each case of ``benchmarks/bench_peer.py`` (IPPO-FF on MPE, MAPPO-GRU on SMAX 2s3z, the peer's
hyper-parameters) and for each repetition, trustmarl runs once with ``precision=float32`` and once with
``precision=bf16`` (alternating, so that a change in the machine's load hits both), compile timed apart from the
run as in bench_peer.py. Printed per run: env-steps/s and the final return / win rate (short budgets: these say
that bf16 still learns, not how well); then the median ratio bf16/float32 per case. The peer itself is not run:
bench_peer.py gives its speed on the same settings.

``--micro N`` times instead one actor gradient (forward and backward of the case's actor network over one
minibatch: 128 steps × 1/4 of the rollout's sequences) N times per precision, alternating, and prints the
median of each: a measurement that a loaded machine disturbs less than whole runs do.

usage: python benchmarks/bench_precision.py [--cases ippo_mpe,mappo_smax] [--mpe-steps 2e5] [--smax-steps 5e4]
                                            [--reps 2] [--micro N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_peer import CASES, run_ours  # noqa: E402


def micro(case: dict, reps: int) -> dict:
    """Median seconds of one jitted actor gradient per precision (alternating calls, after a warm-up)."""
    from trustmarl.config import Config
    from trustmarl.networks import apply_agents
    from trustmarl.trainers import make_train
    fns, args = {}, {}
    for precision in ("float32", "bf16"):
        cfg = Config.build({**case["ours"], "precision": precision, "progress": False})
        tr = make_train(cfg)
        params = jax.jit(tr.init_learner)(jax.random.PRNGKey(0)).actor_params
        T, E, A = cfg.rollout_length, cfg.num_envs // cfg.num_minibatches, tr.num_agents
        if cfg.network == "ff":  # feed-forward minibatches are env-steps: one step of T·E/M sequences
            T, E = 1, cfg.num_envs * cfg.rollout_length // cfg.num_minibatches
        x = jax.random.normal(jax.random.PRNGKey(1), (T, E, A, tr.actor_in_dim))
        h = jnp.zeros((E, A, tr.hidden_size))
        avail = jnp.ones((T, E, A, tr.spec.num_actions), bool)
        resets = jnp.zeros((T, E), bool)

        def loss(p, tr=tr, h=h, x=x, resets=resets, avail=avail):
            return jnp.sum(jax.nn.log_softmax(apply_agents(tr.actor, p, h, x, resets, avail)[1]) ** 2)

        fns[precision] = jax.jit(jax.grad(loss))
        args[precision] = params
        jax.block_until_ready(fns[precision](params))  # compile
    times = {"float32": [], "bf16": []}
    for _ in range(reps):
        for precision in ("float32", "bf16"):
            t = time.perf_counter()
            jax.block_until_ready(fns[precision](args[precision]))
            times[precision].append(time.perf_counter() - t)
    return {p: statistics.median(v) for p, v in times.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="ippo_mpe,mappo_smax")
    p.add_argument("--mpe-steps", type=float, default=2e5)
    p.add_argument("--smax-steps", type=float, default=5e4)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--micro", type=int, default=0, help="time N actor gradients per precision instead of runs")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    results = {}
    for name in args.cases.split(","):
        if name not in CASES:
            sys.exit(f"bench_precision: case {name!r} is unknown; allowed: {', '.join(CASES)}")
        case = CASES[name]
        if args.micro:
            med = micro(case, args.micro)
            print(f"{name}: actor gradient over one minibatch, median of {args.micro}: float32 "
                  f"{1e3 * med['float32']:.2f} ms, bf16 {1e3 * med['bf16']:.2f} ms, "
                  f"ratio {med['float32'] / med['bf16']:.2f}x", flush=True)
            results[name] = {"micro_median_s": med}
            continue
        steps = getattr(args, case["steps_arg"])
        runs = {"float32": [], "bf16": []}
        print(f"\n== {name}: {steps:.3g} env steps per run, {args.reps} repetitions ==", flush=True)
        for rep in range(args.reps):
            for precision in ("float32", "bf16"):
                out = run_ours({**case, "ours": {**case["ours"], "precision": precision}}, steps, measure=True)
                runs[precision].append(out)
                win = f"  win {out['final_win_rate']:.3f}" if "final_win_rate" in out else ""
                print(f"  rep {rep} {precision:<7}: {out['env_steps_per_s']:>9,.0f} env-steps/s  compile "
                      f"{out['compile_s']:.1f}s  run {out['run_s']:.1f}s  return {out['final_return']:.2f}{win}",
                      flush=True)
        ratios = [b["env_steps_per_s"] / f["env_steps_per_s"] for f, b in zip(runs["float32"], runs["bf16"])]
        print(f"  bf16 / float32 env-steps/s per repetition: {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"median {statistics.median(ratios):.2f}x")
        results[name] = {"steps": steps, "runs": runs, "ratios": ratios}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
