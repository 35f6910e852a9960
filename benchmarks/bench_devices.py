"""Speed-up of sharding the seeds over devices (the ``devices`` config key): env-steps/s against device count.

For each device count D of ``--devices`` the script starts a fresh Python process (so every count is timed
alone, with its own compiled program and memory) that builds the config the CLI would build
(``trustmarl train algo=... env=... num_seeds=S devices=D``), compiles one chunk of ``--updates`` updates
with the CLI's own driver (``trustmarl.runtime.loop.make_driver``), runs it once to warm up, then times
``--repeats`` chunks:

* ``env-steps/s``: ``S * num_envs * rollout_length * updates`` over the chunk's wall time, best and median of
  the repeats (all seeds count: S seeds step S times the envs);
* ``speed-up``: the median env-steps/s over the one-device row's (the first count of ``--devices``, normally 1);
* ``CPU-s/chunk``: the process's CPU time (all threads) for one chunk (median); the same work on more devices
  should not need more CPU time, so a speed-up below D with a flat CPU time means the cores, not the program,
  are the limit;
* ``cores``: CPU time over wall time of the chunks (medians): how many cores the process kept busy (on a
  machine shared with other jobs, less than it could).

On a GPU host ``jax.devices()`` gives the GPUs and nothing needs setting: ``python benchmarks/bench_devices.py
--devices 1,2,4,8 --seeds 8``. On the CPU there is one XLA device unless XLA is told to split the host into
several (``XLA_FLAGS=--xla_force_host_platform_device_count=N``, read when jax is imported); ``--host-devices
N`` sets it in the child processes, and the row ``1 (plain)`` times one device in a process without the flag,
so the flag's own cost shows. The seeds must be a multiple of every device count (the ``devices`` key's rule).

Run: ``python benchmarks/bench_devices.py --host-devices 2`` (the defaults: MAPPO on MPE Spread with its
preset, 4 seeds, devices 1 and 2; about 2 minutes on 2 cores), ``--set num_envs=64`` for other settings,
``--json FILE`` to keep the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CHILD_FLAG = "--child"


from bench_agents import parse_set  # noqa: E402  (the same key=value parser; benchmarks/ is the script dir)


def child(spec: dict) -> dict:
    """Time one device count in this process (jax is imported here, after XLA_FLAGS was set by the parent)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import jax

    from trustmarl.config import Config
    from trustmarl.runtime.loop import make_driver
    config = Config.build({**spec["overrides"], "num_seeds": spec["seeds"], "devices": spec["devices"],
                           "progress": False})
    driver = make_driver(config)
    n = spec["updates"]
    state = driver.init()
    t = time.perf_counter()
    driver.compile(state, n)
    compile_s = time.perf_counter() - t
    state, _ = driver.run(state, n)  # warm-up: first-run allocations are not timed
    walls, cpus = [], []
    for _ in range(spec["repeats"]):
        w, c = time.perf_counter(), time.process_time()
        state, _ = driver.run(state, n)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    driver.close()
    steps = driver.trainer.derived.steps_per_update * n * driver.num_seeds
    return {"devices": len(driver.devices), "device_kind": str(driver.devices[0].platform),
            "available": len(jax.devices()), "compile_s": compile_s, "walls": walls, "cpus": cpus,
            "env_steps_per_s_best": steps / min(walls), "env_steps_per_s_median": steps / statistics.median(walls),
            "cpu_s_median": statistics.median(cpus), "env_steps_per_chunk": steps,
            "setup": f"{config.algo} {config.env} {config.network}{'-'.join(map(str, config.hidden))} "
                     f"{config.num_envs}x{config.rollout_length} {config.update_epochs}x{config.num_minibatches}"}


def run_child(spec: dict, host_devices: int | None, timeout: float) -> dict:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    if host_devices:
        flags.append(f"--xla_force_host_platform_device_count={host_devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), CHILD_FLAG, json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = " ".join(proc.stderr.strip().splitlines()[-1:]) or "no output"
        raise SystemExit(f"devices={spec['devices']}: the timing process failed (exit {proc.returncode}): {tail}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", default="1,2", help="comma-separated device counts (first: the reference row)")
    p.add_argument("--seeds", type=int, default=4, help="num_seeds (a multiple of every device count)")
    p.add_argument("--updates", type=int, default=5, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=5, help="timed chunks per device count")
    p.add_argument("--host-devices", type=int, default=None,
                   help="CPU only: split the host into this many XLA devices in the timing processes")
    p.add_argument("--no-plain", action="store_true", help="with --host-devices: skip the '1 (plain)' row")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides (default: algo=mappo env=mpe_spread and its preset)")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per timing process")
    p.add_argument("--json", default=None, help="write the rows to this file")
    args = p.parse_args(argv)
    try:
        counts = [int(x) for x in args.devices.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--devices {args.devices!r} is not comma-separated integers") from None
    if not counts or min(counts) < 1:
        raise SystemExit(f"--devices {args.devices!r}: allowed: positive device counts, e.g. 1,2")
    bad = [d for d in counts if args.seeds % d]
    if bad:
        raise SystemExit(f"--seeds {args.seeds} is not a multiple of device count(s) {bad}; allowed: a multiple of "
                         f"every count of --devices")
    overrides = {"algo": "mappo", "env": "mpe_spread", **parse_set(args.set)}
    base = {"overrides": overrides, "seeds": args.seeds, "updates": args.updates, "repeats": args.repeats}
    rows = []
    load_start = os.getloadavg()[0]
    if args.host_devices and not args.no_plain:
        rows.append(("1 (plain)", run_child({**base, "devices": 1}, None, args.timeout)))
    for d in counts:
        rows.append((str(d), run_child({**base, "devices": d}, args.host_devices, args.timeout)))
    ref = next(r for label, r in rows if label == str(counts[0]))["env_steps_per_s_median"]
    r0 = rows[0][1]
    print(f"# bench_devices: {r0['setup']}, {args.seeds} seeds, chunks of {args.updates} updates "
          f"({r0['env_steps_per_chunk']:,} env steps), {args.repeats} timed chunks; {platform.node()}, "
          f"{os.cpu_count()} cores, {r0['device_kind']}, forced host devices: {args.host_devices or 'no'}, "
          f"1-min load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print("| devices | env-steps/s (median) | env-steps/s (best) | speed-up | CPU-s/chunk | cores | compile s |")
    print("|---|---|---|---|---|---|---|")
    for label, r in rows:
        cores = r["cpu_s_median"] / statistics.median(r["walls"])
        print(f"| {label} | {r['env_steps_per_s_median']:,.0f} | {r['env_steps_per_s_best']:,.0f} | "
              f"{r['env_steps_per_s_median'] / ref:.2f}x | {r['cpu_s_median']:.2f} | {cores:.2f} | "
              f"{r['compile_s']:.1f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "load_start": load_start, "load_end": os.getloadavg()[0],
                       "rows": [{"label": label, **r} for label, r in rows]}, fh, indent=2)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        print("RESULT " + json.dumps(child(json.loads(sys.argv[2]))))
        sys.exit(0)
    sys.exit(main())
