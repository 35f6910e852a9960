"""Parity with the peer at its settings, and trustmarl's defaults on the same schedule (issue 9, item 1).

Configurations (``--configs``, comma-separated; each may carry ``+key=value`` overrides, e.g.
``defaults+precision=bf16``):

  peer           JaxMARL's ``mappo_rnn_smax.py`` with ``mappo_homogenous_rnn_smax.yaml`` through
                 ../shared/peers/time_jaxmarl_baseline.py, one subprocess per seed (the peer trains one seed per
                 process: ``SEED=s`` gives ``PRNGKey(s)``); its per-update log (``wandb.log``) is recorded.
  peer_settings  trustmarl with bench_peer.py's ``mappo_smax`` settings (the peer's hyper-parameters and its
                 choices for the parity switches), trust-region measurement off (the peer measures nothing).
  defaults       trustmarl's MAPPO with its own defaults and SMAX preset (the peer's num_envs, rollout, epochs,
                 minibatches, lr 0.002 annealed over the run), as ``trustmarl train algo=mappo env=smax`` runs it.

``--ablate`` adds one ``peer_settings`` row per parity switch, that switch set back to trustmarl's default.
trustmarl runs ``PRNGKey(s)`` for seed s, one seed per call (compiled once per configuration), so its throughput
is per seed like the peer's.

One run per configuration and seed goes to the largest of ``--steps``; the learning rate anneals to zero over
that run, so a checkpoint below it reads the same run part-way (not a run annealed to that checkpoint).
Printed per configuration: per seed and as mean ± std over seeds (population std, ddof=0)

  win / return @ C   mean of the per-update win rate / episode return over the last ``--window`` updates that
                     end at or before C env steps (an update's metric is over the episodes that ended in it);
  steps to 0.8       env steps at the end of the first update i (i >= 2) where the mean win rate of updates
                     i-2, i-1, i reaches 0.8 (the issue's definition; time_jaxmarl_baseline.py's steps_to_win80);
  env-steps/s        over the jitted run, compile excluded; per CPU-s: over the process CPU time of the run
                     (all threads), the figure to quote on a loaded machine;
  wall to 0.8        steps to 0.8 / env-steps/s (compile excluded), so it scales with the load.

usage: python benchmarks/bench_parity.py [--map 2s3z] [--seeds 3] [--first-seed 0] [--steps 5e5[,2e6]] [--window 5]
                                         [--configs peer,peer_settings,defaults] [--ablate] [--json out.json]
                                         [--peers ../shared/peers]
       python benchmarks/bench_parity.py --from-json a.json,b.json   (one table from saved runs; a configuration
                                                                     in several files pools its seeds)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peer import CASES, ROOT  # noqa: E402  (the peer's settings live there, one copy)

PEER_CASE = CASES["mappo_smax"]
# the switches whose peer values bench_peer.py sets (docs/results.md, parity section); --ablate reverts each
# (env_options carries the env's death_masking=false; reverting it restores trustmarl's death masking)
PARITY_SWITCHES = ("use_active_masks", "adv_norm_scope", "post_gru_gain", "minibatch_over", "done_scope",
                   "env_options")
THRESHOLD, RUN_OF = 0.8, 3
# per-update training diagnostics both sides log with the same definition (means over epochs and minibatches):
# the policy's entropy, the k3 estimate E[(r − 1) − log r] of KL(old‖new), and the critic loss
# 0.5·max((V − R)², (V_clip − R)²) before vf_coef (Huber in place of the square with trustmarl's defaults, so
# comparable with the peer's only at its settings). Their seed means track the size of each update with far
# less noise than win rates, so a systematic difference in the update shows there first.
DIAGNOSTICS = ("entropy", "approx_kl", "value_loss")
PEER_JSON_TAG = "PARITY_PEER_JSON "


# --- pure helpers (tests/test_bench_parity.py) ------------------------------------------------------------
def parse_steps(text: str) -> list[int]:
    """``"5e5,2e6"`` -> ``[500000, 2000000]`` (sorted, distinct, each a positive whole number)."""
    out = []
    for word in text.split(","):
        try:
            value = float(word)
        except ValueError:
            raise ValueError(f"--steps item {word!r} is not a number; allowed: positive numbers like 5e5,2e6") \
                from None
        if not (value >= 1 and value.is_integer()):
            raise ValueError(f"--steps item {word!r} must be a positive whole number of env steps")
        out.append(int(value))
    return sorted(set(out))


def update_end_steps(num_updates: int, steps_per_update: int) -> np.ndarray:
    """Env steps at the end of each update: ``(i + 1) · steps_per_update`` for i = 0..num_updates-1."""
    return (np.arange(num_updates) + 1) * steps_per_update


def steps_to_threshold(end_steps, win, threshold: float = THRESHOLD, run: int = RUN_OF) -> float:
    """Env steps at the end of the first update i >= run-1 where ``mean(win[i-run+1 : i+1]) >= threshold``;
    NaN when none does (a window holding a NaN, an update without ended episodes, does not count)."""
    win = np.asarray(win, dtype=float)
    for i in range(run - 1, len(win)):
        if np.mean(win[i - run + 1:i + 1]) >= threshold:
            return float(end_steps[i])
    return math.nan


def window_mean(end_steps, values, checkpoint: int, window: int) -> float:
    """Mean of ``values`` over the last ``window`` updates whose end is at or before ``checkpoint`` env steps
    (NaN entries skipped; NaN when no update ends by then)."""
    idx = np.flatnonzero(np.asarray(end_steps) <= checkpoint)
    if idx.size == 0:
        return math.nan
    chunk = np.asarray(values, dtype=float)[idx[-window:]]
    return float(np.nanmean(chunk)) if np.isfinite(chunk).any() else math.nan


def mean_std(values) -> tuple[float, float]:
    """(mean, population std) over the finite values; NaN, NaN when none is finite."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return (float(v.mean()), float(v.std())) if v.size else (math.nan, math.nan)


def summarise_seed(run: dict, checkpoints: list[int], window: int) -> dict:
    """One seed's row from its per-update series (``end_steps``, ``win``, ``ret``) and timings."""
    end, win, ret = run["end_steps"], run["win"], run["ret"]
    to80 = steps_to_threshold(end, win)
    rate = run["env_steps"] / run["run_s"]
    out = {"seed": run["seed"], "steps_to_0.8": to80, "env_steps_per_s": rate,
           "env_steps_per_cpu_s": run["env_steps"] / run["cpu_s"], "wall_to_0.8_s": to80 / rate,
           "compile_s": run["compile_s"]}
    for c in checkpoints:
        out[f"win@{c}"] = window_mean(end, win, c, window)
        out[f"return@{c}"] = window_mean(end, ret, c, window)
    return out


def summarise(rows: list[dict]) -> dict:
    """mean ± std over seeds of every numeric column of :func:`summarise_seed`'s rows; ``reached``: how many
    seeds reached the threshold (steps and wall to 0.8 average over those only)."""
    keys = [k for k in rows[0] if k != "seed"]
    out = {k: mean_std([r[k] for r in rows]) for k in keys}
    out["reached"] = sum(np.isfinite(r["steps_to_0.8"]) for r in rows)
    return out


def diagnostics_at(series: list[dict], key: str, updates: list[int]) -> list[tuple[float, float]]:
    """(mean, population std) over seeds of diagnostic ``key`` at each 1-based update number in ``updates``
    (an update past a seed's run, or a seed without the key, is left out; NaN, NaN when none has it)."""
    out = []
    for u in updates:
        vals = [s["diag"][key][u - 1] for s in series
                if key in s.get("diag", {}) and 1 <= u <= len(s["diag"][key])]
        out.append(mean_std(vals))
    return out


def peer_diagnostics(logged: dict, vf_coef: float) -> dict:
    """The peer's logged per-update diagnostics in trustmarl's units: its ``value_loss`` entry is the critic's
    total loss ``VF_COEF · 0.5·max(...)`` (``critic_loss[0]`` in ``mappo_rnn_smax.py``), trustmarl's the loss
    before the coefficient, so the peer's is divided by ``vf_coef``; entropy and approx_kl are the same."""
    out = {k: np.asarray(v, dtype=float) for k, v in logged.items()}
    if "value_loss" in out:
        out["value_loss"] = out["value_loss"] / vf_coef
    return out


def parse_config_name(name: str) -> tuple[str, dict]:
    """``"defaults+precision=bf16+seed=1"`` -> ``("defaults", {"precision": "bf16", "seed": "1"})``."""
    base, *words = name.split("+")
    extra = {}
    for w in words:
        if "=" not in w:
            raise ValueError(f"configuration {name!r}: override {w!r} is not key=value")
        k, v = w.split("=", 1)
        extra[k] = v
    return base, extra


# --- the runs -----------------------------------------------------------------------------------------------
def ours_overrides(base: str, map_name: str) -> dict:
    """trustmarl's overrides for a configuration's base name (``peer_settings``, ``defaults``, or
    ``peer_settings-<switch>``: the peer's settings with that switch back at trustmarl's default)."""
    from trustmarl.config import Config
    if base == "defaults":
        return {"algo": "mappo", "env": "smax", "map": map_name}
    if base == "peer_settings" or base.startswith("peer_settings-"):
        over = {**PEER_CASE["ours"], "map": map_name, "measure_trust_region": False}
        over.pop("measure_at")  # read only with the measurement on
        if base != "peer_settings":
            switch = base.split("-", 1)[1]
            if switch not in PARITY_SWITCHES:
                raise ValueError(f"configuration {base!r}: {switch!r} is not a parity switch; allowed: "
                                 + ", ".join(PARITY_SWITCHES))
            over[switch] = Config._field(switch).default
        return over
    raise ValueError(f"configuration {base!r} is unknown; allowed: peer, peer_settings, defaults, "
                     "peer_settings-<switch>")


def run_ours(overrides: dict, total_steps: int, seeds: list[int]) -> list[dict]:
    """Compile trustmarl's ``train(rng)`` once, run it for each seed's ``PRNGKey(s)``."""
    import jax
    from trustmarl.config import Config
    from trustmarl.trainers import make_train
    cfg = Config.build({**overrides, "total_env_steps": total_steps, "progress": False})
    trainer = make_train(cfg)
    t = time.perf_counter()
    compiled = jax.jit(trainer).lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - t
    d = trainer.derived
    out = []
    for s in seeds:
        t, c = time.perf_counter(), time.process_time()
        _, metrics = compiled(jax.random.PRNGKey(s))
        jax.block_until_ready(metrics)
        run_s, cpu_s = time.perf_counter() - t, time.process_time() - c
        win = np.asarray(metrics["win_rate"], dtype=float)
        # per-agent diagnostics [U, N] -> their mean over agents (each agent has the same number of entries)
        diag = {k: np.asarray(metrics[k], dtype=float).reshape(len(win), -1).mean(-1) for k in DIAGNOSTICS}
        out.append({"seed": s, "end_steps": update_end_steps(len(win), d.env_steps // d.num_updates),
                    "win": win, "ret": np.asarray(metrics["return_mean"], dtype=float), "env_steps": d.env_steps,
                    "run_s": run_s, "cpu_s": cpu_s, "compile_s": compile_s, "diag": diag})
        compile_s = 0.0  # compiled once per configuration
    return out


def _peer_child(peers: str, argv: list[str]) -> None:
    """Runs inside the peer's subprocess: time_jaxmarl_baseline.main() with its ``wandb.log`` recorded per
    update and the CPU time of the compiled run, then one JSON line. The runner assigns ``wandb.log`` itself,
    so the assignment is intercepted (the module's class gets a ``__setattr__`` that wraps what is assigned)."""
    import types
    sys.path.insert(0, peers)
    import jax
    import wandb
    import time_jaxmarl_baseline as runner
    log, marks = [], {}

    class Recording(types.ModuleType):
        def __setattr__(self, name, value):
            if name == "log":
                inner = value

                def value(entry, *a, **k):
                    log.append({key: float(v) for key, v in entry.items() if np.ndim(v) == 0})
                    return inner(entry, *a, **k)
            super().__setattr__(name, value)

    wandb.__class__ = Recording
    compile_ = jax.stages.Lowered.compile

    def timed_compile(self, *a, **k):
        out = compile_(self, *a, **k)
        marks["cpu_after_compile"] = time.process_time()
        return out

    jax.stages.Lowered.compile = timed_compile
    sys.argv = ["time_jaxmarl_baseline.py", *argv]
    runner.main()
    cpu_s = time.process_time() - marks["cpu_after_compile"]
    print(PEER_JSON_TAG + json.dumps({"cpu_s": cpu_s, "win": [e.get("win_rate", math.nan) for e in log],
                                      "ret": [e.get("returns", math.nan) for e in log],
                                      "diag": {k: [e.get(k, math.nan) for e in log] for k in DIAGNOSTICS}}),
          flush=True)


def run_peer(peers: Path, map_name: str, total_steps: int, seed: int) -> dict:
    algo_dir, module, cfg, extra = PEER_CASE["peer"]
    argv = [str(peers / "jaxmarl_baselines" / algo_dir), module, cfg, f"TOTAL_TIMESTEPS={total_steps}",
            f"SEED={seed}", f"MAP_NAME={map_name}", *extra]
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import bench_parity; "
            f"bench_parity._peer_child({str(peers)!r}, {argv!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=peers)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("env_steps=")]
    rec = [ln for ln in out.stdout.splitlines() if ln.startswith(PEER_JSON_TAG)]
    if out.returncode or not line or not rec:
        raise RuntimeError(f"peer failed (seed {seed}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    fields = dict(w.split("=", 1) for w in line[0].split())
    data = json.loads(rec[0][len(PEER_JSON_TAG):])
    win = np.asarray(data["win"], dtype=float)
    # the peer runs TOTAL_TIMESTEPS // NUM_STEPS // NUM_ENVS updates of NUM_ENVS·NUM_STEPS env steps
    per_update = PEER_CASE["ours"]["num_envs"] * PEER_CASE["ours"]["rollout_length"]
    return {"seed": seed, "end_steps": update_end_steps(len(win), per_update), "win": win,
            "ret": np.asarray(data["ret"], dtype=float), "env_steps": len(win) * per_update,
            "run_s": float(fields["run_s"]), "cpu_s": data["cpu_s"], "compile_s": float(fields["compile_s"]),
            "diag": peer_diagnostics(data["diag"], PEER_CASE["ours"]["vf_coef"])}


# --- printing -----------------------------------------------------------------------------------------------
def _fmt(x: float, kind: str) -> str:
    if not np.isfinite(x):
        return "—"
    return {"steps": f"{x:.3g}", "rate": f"{x:,.0f}", "s": f"{x:.0f}", "p": f"{x:.2f}"}[kind]


def print_table(results: dict, checkpoints: list[int], window: int) -> None:
    cols = [(f"win@{c:.0e}", f"win@{c}", "p") for c in checkpoints]
    cols += [(f"return@{c:.0e}", f"return@{c}", "p") for c in checkpoints]
    cols += [("steps to 0.8", "steps_to_0.8", "steps"), ("env-steps/s", "env_steps_per_s", "rate"),
             ("env-steps/CPU-s", "env_steps_per_cpu_s", "rate"), ("wall to 0.8 (s)", "wall_to_0.8_s", "s")]
    print(f"\nmean ± std over seeds (population std); win/return: mean of the last {window} updates ending at or "
          f"before the checkpoint; steps/wall to 0.8: over the seeds that reached it (count in brackets)")
    print("| configuration | seeds | " + " | ".join(c[0] for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for name, res in results.items():
        s = res["summary"]
        cells = []
        for _, key, kind in cols:
            m, sd = s[key]
            cell = f"{_fmt(m, kind)} ± {_fmt(sd, kind)}" if np.isfinite(m) else "—"
            if key in ("steps_to_0.8", "wall_to_0.8_s"):
                cell += f" ({int(s['reached'])})"
            cells.append(cell)
        print(f"| {name} | {len(res['seeds'])} | " + " | ".join(cells) + " |")
    print("\nper seed:")
    print("| configuration | seed | " + " | ".join(c[0] for c in cols) + " | compile (s) |")
    print("|---|---|" + "---|" * (len(cols) + 1))
    for name, res in results.items():
        for r in res["seeds"]:
            print(f"| {name} | {r['seed']} | " + " | ".join(_fmt(r[key], kind) for _, key, kind in cols)
                  + f" | {_fmt(r['compile_s'], 's')} |")
    print_diagnostics(results)


def print_diagnostics(results: dict) -> None:
    """Seed mean ± std of :data:`DIAGNOSTICS` at updates 1, 2, 5, 10, 20, ... and the last (runs saved before
    the diagnostics were recorded have none and are left out)."""
    with_diag = {n: r for n, r in results.items() if any("diag" in s for s in r["series"])}
    if not with_diag:
        return
    last = max(len(s["win"]) for r in with_diag.values() for s in r["series"])
    updates = sorted({u for u in (1, 2, 5, *range(10, last, 10), last) if u <= last})
    print(f"\ntraining diagnostics, mean ± std over seeds at update {', '.join(map(str, updates))}:")
    print("| configuration | diagnostic | " + " | ".join(f"u{u}" for u in updates) + " |")
    print("|---|---|" + "---|" * len(updates))
    for name, res in with_diag.items():
        for key in DIAGNOSTICS:
            cells = [f"{m:.4g} ± {sd:.2g}" if np.isfinite(m) else "—"
                     for m, sd in diagnostics_at(res["series"], key, updates)]
            print(f"| {name} | {key} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--map", default="2s3z", help="SMAX map (both sides)")
    p.add_argument("--seeds", type=int, default=3, help="how many seeds: first-seed .. first-seed+N-1")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--steps", default="5e5", help="checkpoints in env steps, comma-separated; one run to the largest")
    p.add_argument("--window", type=int, default=5, help="updates averaged before each checkpoint")
    p.add_argument("--configs", default="peer,peer_settings,defaults")
    p.add_argument("--ablate", action="store_true", help="add peer_settings with each parity switch reverted")
    p.add_argument("--peers", default=str(ROOT.parent / "shared" / "peers"))
    p.add_argument("--json", default=None, help="also write per-update series and the tables here (rewritten "
                   "after each configuration)")
    p.add_argument("--from-json", default=None, help="comma-separated files written by --json: print their "
                   "configurations in one table (same checkpoints and window) and run nothing")
    args = p.parse_args(argv)
    if args.from_json:
        try:
            saved = [json.loads(Path(f).read_text()) for f in args.from_json.split(",")]
        except (OSError, ValueError) as e:
            sys.exit(f"bench_parity: --from-json: {e}")
        metas = {(s["meta"]["map"], tuple(s["meta"]["checkpoints"]), s["meta"]["window"]) for s in saved}
        if len(metas) != 1:
            sys.exit(f"bench_parity: --from-json files differ in (map, checkpoints, window): {sorted(metas)}")
        results = {}
        for s in saved:  # a configuration in several files (other seeds) is one row over all its seeds
            for n, r in s["results"].items():
                if n in results:
                    seeds = [x["seed"] for x in results[n]["seeds"]]
                    if any(x["seed"] in seeds for x in r["seeds"]):
                        sys.exit(f"bench_parity: --from-json: configuration {n!r} has seed(s) in two files")
                    rows = results[n]["seeds"] + r["seeds"]
                    results[n] = {**results[n], "seeds": rows, "summary": summarise(rows),
                                  "series": results[n]["series"] + r["series"]}
                else:
                    results[n] = r
        print("; ".join(f"{f}: load {s['meta']['load_start']:.1f} at start, {s['meta']['load_end']:.1f} at end"
                        for f, s in zip(args.from_json.split(","), saved)))
        print_table(results, saved[0]["meta"]["checkpoints"], saved[0]["meta"]["window"])
        return
    try:
        checkpoints = parse_steps(args.steps)
        if args.seeds < 1:
            raise ValueError(f"--seeds={args.seeds} must be >= 1")
        if args.first_seed < 0:
            raise ValueError(f"--first-seed={args.first_seed} must be >= 0")
        if args.window < 1:
            raise ValueError(f"--window={args.window} must be >= 1")
        names = [n for n in args.configs.split(",") if n]
        if args.ablate:
            names += [f"peer_settings-{s}" for s in PARITY_SWITCHES]
        plans = {}
        for n in names:
            base, extra = parse_config_name(n)
            if base == "peer":
                if extra:
                    raise ValueError(f"configuration {n!r}: the peer takes no +key=value overrides")
                plans[n] = None
            else:
                plans[n] = {**ours_overrides(base, args.map), **extra}
        from trustmarl.config import Config, ConfigError
        for n, over in plans.items():  # every configuration must build before the first run starts
            if over is not None:
                try:
                    Config.build({**over, "total_env_steps": checkpoints[-1]})
                except ConfigError as e:
                    raise ValueError(f"configuration {n!r}: {e}") from None
    except ValueError as e:
        sys.exit(f"bench_parity: {e}")
    peers, total = Path(args.peers), checkpoints[-1]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    load_start = os.getloadavg()
    print(f"bench_parity: {args.map}, seeds {seeds}, one run of {total:.3g} env steps per seed, checkpoints "
          f"{', '.join(f'{c:.3g}' for c in checkpoints)}; load average {load_start[0]:.1f} at start", flush=True)
    results = {}
    for n, over in plans.items():
        t = time.perf_counter()
        runs = ([run_peer(peers, args.map, total, s) for s in seeds] if over is None
                else run_ours(over, total, seeds))
        rows = [summarise_seed(r, checkpoints, args.window) for r in runs]
        results[n] = {"overrides": over, "seeds": rows, "summary": summarise(rows),
                      "series": [{"seed": r["seed"], "end_steps": r["end_steps"].tolist(), "win": r["win"].tolist(),
                                  "return": r["ret"].tolist(),
                                  "diag": {k: np.asarray(v).tolist() for k, v in r["diag"].items()}}
                                 for r in runs]}
        print(f"  {n}: done in {time.perf_counter() - t:.0f} s, load {os.getloadavg()[0]:.1f}; win@{total:.3g} per "
              "seed " + ", ".join(f"{r[f'win@{total}']:.2f}" for r in rows), flush=True)
        if args.json:  # after each configuration, so a stopped run keeps what it finished
            meta = {"map": args.map, "seeds": seeds, "checkpoints": checkpoints, "window": args.window,
                    "load_start": load_start[0], "load_end": os.getloadavg()[0]}
            Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1,
                                                  default=lambda x: None if x is None else float(x)))
    print_table(results, checkpoints, args.window)
    print(f"\nload average (1 min) {load_start[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
