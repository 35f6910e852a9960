"""trustmarl vs the JaxMARL baseline trainers (the peer), same machine, same hyper-parameters, one sitting.

Cases (issue 2, item 10):
  ippo_mpe   IPPO feed-forward on MPE simple_spread_v3 (3 agents), hyper-parameters of ippo_ff_mpe.yaml
  mappo_smax MAPPO GRU on SMAX 2s3z, hyper-parameters of mappo_homogenous_rnn_smax.yaml

For each: the peer runs in a subprocess through ../shared/peers/time_jaxmarl_baseline.py (compile timed apart
from run), then trustmarl runs in this process the same way. Printed: env-steps/s of both and their ratio,
final return (and win rate on SMAX) of both, trustmarl's throughput over the random-action env ceiling, and
the cost of the trust-region measurements (a second trustmarl run with them off).

Both trainers run the same algorithm: ``bootstrap_truncation=False`` because the peer ends the return at
every episode end, time limits included (trustmarl's default bootstraps there). The mappo_smax case also sets
the switches of docs/results.md's parity section to the peer's choices (use_active_masks, adv_norm_scope,
post_gru_gain, minibatch_over, done_scope, the death_masking env option); ippo_mpe keeps trustmarl's per-rollout advantage normalisation and env-step
minibatches, where the peer normalises per minibatch and shuffles (agent, env-step) entries. Returns are put on the
peer's scale: JaxMARL's MPELogWrapper multiplies MPE rewards by the number of agents
(the team sum), trustmarl logs the team mean, so trustmarl's MPE return is multiplied by N here.

usage: python benchmarks/bench_peer.py [--cases ippo_mpe,mappo_smax] [--mpe-steps 2e6] [--smax-steps 1e6]
                                       [--peers ../shared/peers] [--no-measure-off]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "ippo_mpe": {
        "peer": ("IPPO", "ippo_ff_mpe", "ippo_ff_mpe.yaml", ["NUM_SEEDS=1"]),
        "ours": dict(algo="ippo", env="mpe_spread", num_agents=3, num_envs=16, rollout_length=128,
                     update_epochs=4, num_minibatches=4, lr=2.5e-4, gamma=0.99, gae_lambda=0.95, clip_eps=0.2,
                     ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, activation="tanh", anneal_lr=True,
                     network="ff", hidden=(64, 64), value_clip=True, huber_delta=0.0, value_norm=False,
                     adv_norm=True, agent_id=False, layer_norm_input=False, share_params=True,
                     bootstrap_truncation=False),
        "ceiling": ("MPE_simple_spread_v3", "16"),
        "steps_arg": "mpe_steps",
    },
    "mappo_smax": {
        "peer": ("MAPPO", "mappo_rnn_smax", "mappo_homogenous_rnn_smax.yaml", []),
        "ours": dict(algo="mappo", env="smax", map="2s3z", num_envs=128, rollout_length=128, update_epochs=4,
                     num_minibatches=4, lr=0.002, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.0,
                     vf_coef=0.5, max_grad_norm=0.25, activation="relu", anneal_lr=True, network="gru",
                     hidden=(128,), value_clip=True, huber_delta=0.0, value_norm=False, adv_norm=True,
                     agent_id=False, layer_norm_input=False, share_params=True, global_state="env",
                     bootstrap_truncation=False,
                     # the peer's choices where trustmarl's defaults differ (docs/results.md, parity section):
                     # no dead-agent masking, advantages normalised per minibatch, orthogonal gain 2 after the
                     # GRU, minibatches over (agent, env) sequences, GRU states reset where the agent is done,
                     # a dead agent's critic still sees the world state
                     use_active_masks=False, adv_norm_scope="minibatch", post_gru_gain=2.0,
                     minibatch_over="agents", done_scope="agent", env_options='{"death_masking": false}',
                     # minibatch_over=agents allows only the exact end-of-epoch measurement (the in-loss one
                     # would pair agents of different envs); the peer measures nothing, see --no-measure-off
                     measure_at="epoch_end"),
        "ceiling": ("HeuristicEnemySMAX", "128", "2s3z"),
        "steps_arg": "smax_steps",
    },
}


def run_peer(peers: Path, case: dict, steps: float) -> dict:
    algo_dir, module, cfg, extra = case["peer"]
    cmd = [sys.executable, str(peers / "time_jaxmarl_baseline.py"), str(peers / "jaxmarl_baselines" / algo_dir),
           module, cfg, f"TOTAL_TIMESTEPS={steps:g}", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=peers)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("env_steps=")]
    if not line:
        raise RuntimeError(f"peer failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e+naif]+)", line[0])}


def run_ceiling(peers: Path, case: dict) -> float:
    out = subprocess.run([sys.executable, str(peers / "env_ceiling.py"), *case["ceiling"]], capture_output=True,
                         text=True, cwd=peers)
    m = re.search(r"random_env_steps_per_s=(\d+)", out.stdout)
    return float(m.group(1)) if m else float("nan")


def run_ours(case: dict, steps: float, measure: bool) -> dict:
    from trustmarl.config import Config
    from trustmarl.trainers import make_train
    cfg = Config.build({**case["ours"], "total_env_steps": int(steps), "measure_trust_region": measure,
                        "progress": False})
    trainer = make_train(cfg)
    rng = jax.random.PRNGKey(0)
    t = time.perf_counter()
    compiled = jax.jit(trainer).lower(rng).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    _, metrics = compiled(rng)
    jax.block_until_ready(metrics)
    run_s = time.perf_counter() - t
    env_steps = trainer.derived.env_steps
    ret = np.asarray(metrics["return_mean"])
    out = {"env_steps": env_steps, "compile_s": compile_s, "run_s": run_s, "env_steps_per_s": env_steps / run_s,
           "final_return": float(np.nanmean(ret[-10:]))}
    if cfg.env == "mpe_spread":
        out["final_return"] *= trainer.num_agents  # the peer's MPELogWrapper scale (team sum)
    if "win_rate" in metrics:
        out["final_win_rate"] = float(np.nanmean(np.asarray(metrics["win_rate"])[-10:]))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="ippo_mpe,mappo_smax")
    p.add_argument("--mpe-steps", type=float, default=2e6)
    p.add_argument("--smax-steps", type=float, default=1e6)
    p.add_argument("--peers", default=str(ROOT.parent / "shared" / "peers"))
    p.add_argument("--no-measure-off", action="store_true", help="skip the run without trust-region measurement")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    peers = Path(args.peers)
    results = {}
    for name in args.cases.split(","):
        if name not in CASES:
            sys.exit(f"bench_peer: case {name!r} is unknown; allowed: {', '.join(CASES)}")
        case = CASES[name]
        steps = getattr(args, case["steps_arg"])
        peer = run_peer(peers, case, steps)
        ours = run_ours(case, steps, measure=True)
        off = None if args.no_measure_off else run_ours(case, steps, measure=False)
        ceiling = run_ceiling(peers, case)
        results[name] = {"peer": peer, "ours": ours, "ours_no_measure": off, "random_ceiling": ceiling}
        print(f"\n== {name}: {steps:.3g} env steps ==")
        print(f"peer      : {peer['env_steps_per_s']:>9,.0f} env-steps/s  compile {peer['compile_s']:.1f}s  "
              f"return {peer['final_return']:.2f}" + (f"  win {peer['final_win_rate']:.3f}" if 'final_win_rate' in peer else ""))
        print(f"trustmarl : {ours['env_steps_per_s']:>9,.0f} env-steps/s  compile {ours['compile_s']:.1f}s  "
              f"return {ours['final_return']:.2f}" + (f"  win {ours['final_win_rate']:.3f}" if 'final_win_rate' in ours else ""))
        print(f"ratio trustmarl/peer env-steps/s: {ours['env_steps_per_s'] / peer['env_steps_per_s']:.2f}x "
              "(trust-region measurement on)")
        if off:
            print(f"  without measurement: {off['env_steps_per_s']:,.0f} env-steps/s, ratio "
                  f"{off['env_steps_per_s'] / peer['env_steps_per_s']:.2f}x; measurement cost "
                  f"{100 * (off['env_steps_per_s'] / ours['env_steps_per_s'] - 1):.1f}% of run time")
        print(f"training / random-action env ceiling ({ceiling:,.0f}/s): {ours['env_steps_per_s'] / ceiling:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
