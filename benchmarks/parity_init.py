"""How far each seed's initial critic starts from the returns, for the peer and for trustmarl at its settings, and
how that goes with the seed's win rate in saved ``bench_parity.py`` runs (issue 9, item 1).

At the peer's settings the critic regresses raw returns (no ValueNorm) of a world state whose features are not
normalised (positions up to 32, weapon cooldowns down to about -35), and the value clip lets a value move at most
``clip_eps`` = 0.2 from the rollout's value per update. A seed whose initial critic predicts values far from the
returns (which are about 0.2 per episode on 2s3z early on) therefore gives noisy advantages for many updates.
This script measures that offset per seed on both sides and sets it beside each seed's win rate.

* One rollout of the peer's settings (seed 0's initial policy, 32 envs x 128 steps) is the common input.
* trustmarl's initial critic for seed s is the one ``train(PRNGKey(s))`` starts from.
* The peer's is its ``CriticRNN`` initialised as ``mappo_rnn_smax.py``'s ``train(PRNGKey(s))`` does: the third
  key of ``jax.random.split(PRNGKey(s), 3)``.
* Offset = mean initial value over the rollout's entries; the table gives it per seed with the seed's win rate
  from ``--from-json`` files (``peer`` and ``peer_settings`` rows) and the correlation of |offset| with it.

usage: python benchmarks/parity_init.py [--map 2s3z] [--seeds 12] [--from-json a.json,b.json] [--peers ../shared/peers]
Needs the bench extra (the peer's module imports hydra and wandb).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_parity import ours_overrides  # noqa: E402
from bench_peer import ROOT  # noqa: E402


def initial_offsets(map_name: str, seeds: list[int], peers: Path) -> tuple[list[float], list[float]]:
    """Mean initial critic value over one common rollout, per seed: (peer, trustmarl at the peer's settings)."""
    import jax
    import jax.numpy as jnp
    from trustmarl.config import Config
    from trustmarl.trainers import make_train
    sys.path.insert(0, str(peers / "jaxmarl_baselines" / "MAPPO"))
    import mappo_rnn_smax as P
    cfg = Config.build({**ours_overrides("peer_settings", map_name), "num_envs": 32, "total_env_steps": 32 * 128,
                        "progress": False})
    tr = make_train(cfg)
    st = tr.init(jax.random.PRNGKey(0))
    _, traj = jax.jit(tr.rollout)(st.learner, st.runner, jax.random.PRNGKey(1))
    T, E, A, _ = traj.critic_in.shape
    x = jnp.swapaxes(traj.critic_in, 1, 2).reshape(T, A * E, -1)  # the peer's agent-major actors
    resets = jnp.swapaxes(traj.reset, 1, 2).reshape(T, A * E)
    net = P.CriticRNN(config={"FC_DIM_SIZE": 128, "GRU_HIDDEN_DIM": 128})
    h0 = jnp.zeros((A * E, 128))
    peer, ours = [], []
    for s in seeds:
        key = jax.random.split(jax.random.PRNGKey(s), 3)[2]  # train(rng): rng, _rng_actor, _rng_critic
        _, v = net.apply(net.init(key, h0[:1], (x[:1, :1], resets[:1, :1])), h0, (x, resets))
        peer.append(float(v.mean()))
        params = tr.init(jax.random.PRNGKey(s)).learner.critic_params
        _, v = tr.critic_apply(params, st.runner.critic_h, traj.critic_in, traj.reset)
        ours.append(float(v.mean()))
    return peer, ours


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--map", default="2s3z")
    p.add_argument("--seeds", type=int, default=12, help="seeds 0 .. N-1")
    p.add_argument("--from-json", default="", help="bench_parity.py --json files whose per-seed win rates to "
                   "set beside the offsets (rows peer and peer_settings, their last checkpoint)")
    p.add_argument("--peers", default=str(ROOT.parent / "shared" / "peers"))
    args = p.parse_args(argv)
    if args.seeds < 1:
        sys.exit(f"parity_init: --seeds={args.seeds} must be >= 1")
    seeds = list(range(args.seeds))
    peer, ours = initial_offsets(args.map, seeds, Path(args.peers))
    wins = {"peer": {}, "peer_settings": {}}
    checkpoint = None
    for f in [f for f in args.from_json.split(",") if f]:
        saved = json.loads(Path(f).read_text())
        checkpoint = saved["meta"]["checkpoints"][-1]
        for name in wins:
            for row in saved["results"].get(name, {}).get("seeds", []):
                wins[name][row["seed"]] = row[f"win@{checkpoint}"]
    print(f"initial critic: mean value over one rollout of {args.map} at the peer's settings, per seed")
    print("| seed | the peer | trustmarl, peer's settings |" + (f" peer win@{checkpoint:.0e} | trustmarl win@"
                                                                f"{checkpoint:.0e} |" if checkpoint else ""))
    print("|---|---|---|" + ("---|---|" if checkpoint else ""))
    fmt = lambda w: "—" if w is None else f"{w:.2f}"  # noqa: E731
    for i, s in enumerate(seeds):
        line = f"| {s} | {peer[i]:+.2f} | {ours[i]:+.2f} |"
        if checkpoint:
            line += f" {fmt(wins['peer'].get(s))} | {fmt(wins['peer_settings'].get(s))} |"
        print(line)
    print(f"mean |offset| over seeds 0-{seeds[-1]}: the peer {np.mean(np.abs(peer)):.2f}, trustmarl "
          f"{np.mean(np.abs(ours)):.2f}; mean offset {np.mean(peer):+.2f}, {np.mean(ours):+.2f}")
    for name, offs in (("peer", peer), ("peer_settings", ours)):
        have = sorted(s for s in wins[name] if s in seeds)
        if len(have) >= 3:
            o, w = [abs(offs[s]) for s in have], [wins[name][s] for s in have]
            print(f"{name}: correlation of |offset| with win@{checkpoint:.0e} over seeds {have}: "
                  f"{np.corrcoef(o, w)[0, 1]:+.2f}")


if __name__ == "__main__":
    main()
