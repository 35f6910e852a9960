"""Training time per update and decision time per step of the update orders (Tables 1–2 of Zhang et al. 2024).

For each SMAX map and each of MAPPO (simultaneous), HAPPO (random permutation), A2PO (semi-greedy, agent by
agent), B2MAPO (DAG batches, at most ``--num-batches``, its upper layer and π_ind's distillation included) and
the plain batch-by-batch order (``update_order=batches``, random partition into ``--num-batches`` groups): the
wall time of one jitted update (rollout + learning; compile excluded, median of ``--repeats`` timed chunks)
and of one decentralised decision step (``trainer.act`` for every agent of ``--envs`` envs with the parameters
evaluation acts with, ``trainer.policy_params``: π_ind for B2MAPO; jitted, median). Printed as two tables with
the per-map and mean ratio to A2PO (and, for decision time, to MAPPO), as the paper reports them. A third table
times the learning step alone (``trainer.learn`` on one fixed rollout: critic pass, advantages, the update
order with B2MAPO's upper layer and π_ind), the part of an update the order changes.

In trustmarl every order's decision network is MAPPO's (B2MAPO's π_ind is MAPPO's architecture by design;
trustmarl's A2PO does not condition on preceding agents' actions), so decision times should not differ by
algorithm; the paper's A2PO network conditions on preceding agents' actions, which is where its Table 2 gap
comes from. Training time is what the orders change: A2PO and HAPPO run the PPO epochs once per agent, the
batch orders once per non-empty batch (B2MAPO's DAG may have fewer levels than ``num_batches``: the groups
after its last level do not run, also under the seed vmap).

Both clocks are measured; ``--clock`` picks the one the tables use (process CPU time by default, the figure
that survives a shared machine's load; each per-cell line prints both and the 1-minute load average).

usage: python benchmarks/bench_orders.py [--maps 2m_vs_1z,2s3z,8m_vs_9m,27m_vs_30m] [--num-batches 3]
                                         [--envs 32] [--rollout 64] [--repeats 3] [--algos MAPPO,A2PO,B2MAPO]
                                         [--clock cpu|wall]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp

from trustmarl.config import Config
from trustmarl.trainers import make_train

ORDERS = {
    "MAPPO": dict(algo="mappo"),
    "HAPPO": dict(algo="happo", share_params=True),
    "A2PO": dict(algo="a2po"),
    "B2MAPO": dict(algo="b2mapo"),
    # π_ind by 10 passes of eq. 13 after the update (the schedule before ind_during became the default)
    "B2MAPO-after10": dict(algo="b2mapo", ind_during=False, ind_epochs=10),
    "batches": dict(algo="a2po", update_order="batches", batch_order="score", clip_schedule_weight=0.0),
}


def _timed(fn, *args, repeats: int) -> dict[str, float]:
    """Median wall time and median process CPU time (all threads) of ``fn(*args)`` after one warm-up call.

    Process CPU time is the figure to compare on a shared machine: other processes' load stretches wall time
    but not (to first order) the CPU seconds this process spends."""
    out = fn(*args)
    jax.block_until_ready(out)
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        jax.block_until_ready(out)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


def measure(map_name: str, kw: dict, args) -> tuple[dict[str, dict[str, float]], int]:
    cfg = Config.build({"env": "smax", "map": map_name, "network": "gru", "hidden": (64,), "num_envs": args.envs,
                        "rollout_length": args.rollout, "update_epochs": 2, "num_minibatches": 2,
                        "total_env_steps": args.envs * args.rollout * 10, "measure_trust_region": False,
                        "progress": False, **({"num_batches": args.num_batches} if kw.get("update_order") ==
                                              "batches" or kw["algo"] == "b2mapo" else {}), **kw})
    trainer = make_train(cfg)
    # the run loop's program: the seed axis vmapped (one seed)
    state = jax.jit(jax.vmap(trainer.init))(jax.random.PRNGKey(0)[None])
    update = jax.jit(jax.vmap(lambda s: trainer.run_chunk(s, 1)))
    train_s = _timed(update, state, repeats=args.repeats)
    # the learning step alone (critic pass, advantages, the update order, B2MAPO's upper layer and π_ind) on one
    # fixed rollout: the part of an update the order changes, closest to the paper's "training time"
    keys = jax.random.split(jax.random.PRNGKey(3), 1)
    end, traj = jax.jit(jax.vmap(trainer.rollout))(state.learner, state.runner, keys)
    learn = jax.jit(jax.vmap(trainer.learn))
    learn_s = _timed(learn, state.learner, traj, state.runner, end, keys, repeats=args.repeats)
    state = jax.tree.map(lambda x: x[0], state)
    ts = state.runner.timestep
    act = jax.jit(lambda p, h, o, a, r, n: trainer.act(p, h, o, a, r, n).action)
    noise = trainer.draw_noise(jax.random.PRNGKey(1), (args.envs,))
    decide_s = _timed(act, trainer.policy_params(state), state.runner.actor_h, ts.obs, ts.avail,
                      jnp.ones((args.envs,), bool), noise, repeats=args.repeats * 20)
    return {"train": train_s, "learn": learn_s, "decide": decide_s}, trainer.num_agents


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--maps", default="2m_vs_1z,2s3z,8m_vs_9m,27m_vs_30m")
    p.add_argument("--algos", default=",".join(ORDERS), help=f"subset of {', '.join(ORDERS)} (A2PO needed)")
    p.add_argument("--num-batches", type=int, default=3)
    p.add_argument("--envs", type=int, default=32)
    p.add_argument("--rollout", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="clock of the printed tables: process CPU time (default; for a shared machine) or wall time")
    args = p.parse_args()
    maps = args.maps.split(",")
    algos = args.algos.split(",")
    bad = [a for a in algos if a not in ORDERS]
    if bad or "A2PO" not in algos:
        p.error(f"--algos={args.algos!r}: allowed {', '.join(ORDERS)}, and A2PO must be one (the reference)")
    train, learn, decide, agents = {}, {}, {}, {}
    for m in maps:
        for name in algos:
            kw = ORDERS[name]
            r, n = measure(m, kw, args)
            t, ln, d = r["train"], r["learn"], r["decide"]
            train[(name, m)], learn[(name, m)], decide[(name, m)] = t[args.clock], ln[args.clock], d[args.clock]
            agents[m] = n
            print(f"  {m:<12} {name:<8} update {t['wall'] * 1e3:9.1f} ms (CPU {t['cpu'] * 1e3:9.1f})   "
                  f"learning {ln['wall'] * 1e3:9.1f} ms (CPU {ln['cpu'] * 1e3:9.1f})   "
                  f"decide {d['wall'] * 1e6:8.1f} µs/step (CPU {d['cpu'] * 1e6:8.1f})   "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    refs = [("A2PO", "A2PO")] + ([("MAPPO", "MAPPO")] if "MAPPO" in algos else [])
    for title, table, unit, scale, against in (("Training time per update (rollout + learning)", train, "s", 1.0,
                                                refs[:1]),
                                               ("Learning time per update (no rollout)", learn, "s", 1.0, refs[:1]),
                                               ("Decision time per step", decide, "ms", 1e3, refs)):
        print(f"\n{title} ({unit}, {'process CPU' if args.clock == 'cpu' else 'wall'} time); per map: time (ratio to A2PO); last columns: mean over maps relative to "
              + " and ".join(r for r, _ in against))
        print("| algorithm | " + " | ".join(f"{m} ({agents[m]} agents)" for m in maps) + " | "
              + " | ".join(f"mean vs {r}" for r, _ in against) + " |")
        print("|---" * (len(maps) + 1 + len(against)) + "|")
        for name in algos:
            mean = statistics.mean(table[(name, m)] for m in maps)
            cells = [f"{table[(name, m)] * scale:.4g} ({table[(name, m)] / table[('A2PO', m)]:.2f}x)" for m in maps]
            ratios = [f"{mean / statistics.mean(table[(r, m)] for m in maps):.2f}x" for r, _ in against]
            print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
