"""The experiments of Sun et al. (2022), one command each: ``trustmarl reproduce sun2022-fig3 --budget 0.01``.

Each experiment is a list of runs (configs) and the figure drawn from their run folders. ``budget`` scales
every run's ``total_env_steps`` (1.0 = the paper's budget, 1e7 env steps on SMAX as in JaxMARL's baselines);
experiments that measure one or ten updates (Fig. 1, 2, 7) are not scaled. Fig. 5 and 6 draw the MAPPO and
the IPPO runs of Fig. 4, Fig. 10 the runs of Fig. 9, from those experiments' folders. Maps (SMAX has the
paper's maps with 3, 5, 6, 10 and 27 agents built in; SMAX's unit stats differ from StarCraft II, so returns
are not comparable with the paper's numbers, only the trends):

=========  ===============  ===================================================
agents     map              used in
=========  ===============  ===================================================
3          3s_vs_5z         Table 1; Fig. 2, 4-6
5          2s3z             Table 1; Fig. 1-8
6          6h_vs_8z         Table 1; Fig. 2, 4-6
8          3s5z             Fig. 8 (A.5: "maps with 5 and 8 agents")
10         10m_vs_11m       Table 1; Fig. 2-10
27         27m_vs_30m       Table 1; Fig. 2, 4-6, 8-10
=========  ===============  ===================================================

Clip values ε ∈ {0.05, 0.1, 0.3, 0.5, 1.0} and no clipping (§6.1–6.2, Fig. 3). Networks default to the
feed-forward actor-critic for CPU budgets (``--set network=gru`` gives the paper's recurrent policies), and
the trust region is measured exactly at the end of every epoch (``measure_at=epoch_end``).

``zhang2024-smax`` is Zhang et al. (2024)'s comparison (Fig. 4): MAPPO, HAPPO, A2PO and B2MAPO on the hard
maps 3s5z_vs_3s6z (8 agents), 27m_vs_30m (27), 5m_vs_6m (5) and 8m_vs_9m (8), every algorithm with parameter
sharing as the paper runs SMAC (§5), win rate and return per map.

``zhang2024-grf`` is the same comparison on Google Research Football (Fig. 5): academy_counterattack_easy and
academy_counterattack_hard, 4 controlled players each, on the host path (``envs/grf.py``, one seed per
process, so ``seeds`` becomes that many runs ``*_seed0`` .. ``*_seed{seeds-1}``, pooled by the figure and the
tables). Every algorithm with one parameter set per agent (``share_params=false``: §5 runs GRF
"parameter-independent"). The paper gives no GRF budget, reward or network; the ones chosen are HARL's tuned
HAPPO configs for these scenarios (``tuned_configs/football/academy_counterattack_{easy,hard}/happo``; HAPPO
is the paper's baseline and HARL its source): budget 1.0 = 2.5e7 env steps on easy and 5e7 on hard, the
``scoring,checkpoints`` reward, simple115v2 observations, feed-forward 64-64 relu networks. The update shape is
CPU-sized as for SMAX (8 env processes × 128 steps, 5 epochs × 2 minibatches; HARL: 50 × 200/1000 steps,
15 epochs), overridable with ``--set``. A win is an episode in which the controlled team scored
(``infos["won"]``: the scoring reward summed over the episode is > 0); the figure draws the win rate and return
of the rollouts' episodes against env steps, and a table per metric (``zhang2024-grf.md``) gives each
algorithm's mean ± std over seeds in the last 20 % of its updates. The paper's 5 seeds: ``--seeds 5`` (the
default is 1, as for every experiment).

``li2023-table10`` is Table 10 of Li et al. (MAMT): MAAC, MADDPG, MAMD and MAMT on Spread (2 agents),
Multi-Walker (3, PettingZoo ``multiwalker_v9`` on the host path), Rover-Tower (8) and Pursuit (8), each with
its own defaults (Table 3's settings: 12 envs, ~100 transitions and 4 gradient steps of batch 1024 per
iteration, buffer 10⁶, Adam 1e-3). It writes a table instead of a figure: per algorithm and env the mean ±
std over seeds of the training return (``return_mean``) in the last 10 % of iterations (window ``tail:0.1``:
the episodes that ended there; Table 10 averages the
last 1,000 of 10⁴–5·10⁴ episodes). Budget 1.0 is 50,000 episodes per env (Table 3's "step size from 10,000
to 50,000", read as episodes) of the env's episode length. Host-path envs run one seed per process, so
``seeds`` becomes that many runs with ``seed = 0 .. seeds-1``; JAX envs vmap ``num_seeds`` seeds in one run.
Table 10's other baselines are in the plan where the paper has them: MA-PPO (``ma_ppo``, on-policy, Table 6's
defaults) on all four tasks and LOLA with DQN (``lola_dqn``, Table 7) on Spread only. ``--set`` keys reach the
runs whose algorithm reads them (an off-policy ``collect_steps`` skips the MA-PPO runs).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

MAPS_BY_AGENTS = {3: "3s_vs_5z", 5: "2s3z", 6: "6h_vs_8z", 10: "10m_vs_11m", 27: "27m_vs_30m"}
CLIPS = (0.05, 0.1, 0.3, 0.5, 1.0, None)  # None: no clipping
SMALL_CLIPS = (0.01, 0.03, 0.05, 0.08)  # A.5's "small clipping values"
FULL_STEPS = 10_000_000

# CPU-sized shape of one update; tuned only for cost, every key can be overridden with --set.
BASE = dict(env="smax", network="ff", hidden=(64, 64), num_envs=32, rollout_length=128, update_epochs=5,
            num_minibatches=2, activation="relu", progress=False, measure_at="epoch_end")
# Off-policy experiments keep each algorithm's defaults (Li et al. Table 3) and only silence the progress bar.
OFF_POLICY_BASE = dict(network="ff", progress=False)


def _clip(eps):
    return {"no_clip": True, "clip_eps": 0.2} if eps is None else {"clip_eps": eps}


def _tag(eps):
    return "noclip" if eps is None else f"clip{eps:g}"


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    doc: str
    runs: Callable[[], dict[str, dict]] | None  # run name -> config overrides; None when ``shares``
    figure: str  # key of trustmarl.analysis.figures.FIGURES
    figure_kwargs: dict = dataclasses.field(default_factory=dict)
    scaled: bool = True  # whether --budget scales total_env_steps
    shares: str | None = None  # another experiment whose runs (and run folders) this figure reads
    select: Callable[[dict], bool] | None = None  # which of the shared experiment's runs (by config)
    base: dict | None = None  # keys every run starts from (None: BASE, the on-policy SMAX shape)
    # make_table keyword arguments (one dict, or one per table): a Markdown table, beside the figure when
    # ``figure`` names one, else instead of it
    table: dict | tuple[dict, ...] | None = None


def _fig1():
    # One update of many epochs on 2s3z (5 agents): the ratio range after each epoch, per clip value.
    return {f"ippo_2s3z_{_tag(e)}": dict(algo="ippo", map="2s3z", update_epochs=20, num_minibatches=1,
                                         total_env_steps=32 * 128, **_clip(e)) for e in CLIPS}


def _fig2():
    # "first round of actor update, which contains 100 optimization epochs": left, clip values on 2s3z;
    # right, the summed TV at clip 0.1 on maps with 3..27 agents (§6.2).
    runs = {f"ippo_2s3z_{_tag(e)}": dict(algo="ippo", map="2s3z", update_epochs=100, num_minibatches=1,
                                         total_env_steps=32 * 128, **_clip(e)) for e in (0.1, 0.3, 0.5, None)}
    for n, m in MAPS_BY_AGENTS.items():
        runs[f"ippo_{m}_clip0.1"] = dict(algo="ippo", map=m, update_epochs=100, num_minibatches=1,
                                         total_env_steps=32 * 128, clip_eps=0.1)
    return runs


def _fig7():
    # A.4 / Fig. 7: the summed TV per optimisation epoch at clip 0.1 as the number of epochs grows. The
    # paper does not list the epoch counts; 5-20 spans MAPPO's usual settings (5, 10, 15) and Fig. 1's 20.
    # Ten updates rather than one, since the paper notes the epochs' effect "may increase" later in training.
    return {f"ippo_{m}_epochs{e}": dict(algo="ippo", map=m, update_epochs=e, num_minibatches=1,
                                        total_env_steps=10 * 32 * 128, clip_eps=0.1)
            for m in ("2s3z", "10m_vs_11m") for e in (5, 10, 15, 20)}


def _fig3():
    # Footnote 1 of §6.3: "the value function is not clipped in our experiments".
    return {f"ippo_{m}_{_tag(e)}": dict(algo="ippo", map=m, total_env_steps=FULL_STEPS, value_clip=False, **_clip(e))
            for m in ("2s3z", "10m_vs_11m") for e in CLIPS}


def _fig4():
    return {f"{a}_{m}": dict(algo=a, map=m, total_env_steps=FULL_STEPS, clip_eps=0.1)
            for a in ("ippo", "mappo") for m in MAPS_BY_AGENTS.values()}


def _fig8():
    # A.5: clip values below 0.1 on maps with 5, 8, 10 and 27 agents; value function unclipped as in Fig. 3.
    return {f"ippo_{m}_{_tag(e)}": dict(algo="ippo", map=m, total_env_steps=FULL_STEPS, value_clip=False, **_clip(e))
            for m in ("2s3z", "3s5z", "10m_vs_11m", "27m_vs_30m") for e in SMALL_CLIPS}


ZHANG_HARD_MAPS = ("3s5z_vs_3s6z", "27m_vs_30m", "5m_vs_6m", "8m_vs_9m")


def _zhang_smax():
    # §5: "we implement all the algorithms with parameter sharing in SMAC"; HAPPO's own default is unshared.
    return {f"{a}_{m}": dict(algo=a, map=m, total_env_steps=FULL_STEPS, share_params=True)
            for a in ("mappo", "happo", "a2po", "b2mapo") for m in ZHANG_HARD_MAPS}


# Zhang et al. (2024) Fig. 5 on GRF. Budget 1.0 per scenario: HARL's tuned HAPPO num_env_steps (the paper gives none).
ZHANG_GRF_STEPS = {"counterattack_easy": 25_000_000, "counterattack_hard": 50_000_000}
# The GRF runs' shape: the host path steps one env per worker process, so 8 envs (not BASE's 32) on a small CPU.
GRF_BASE = {**BASE, "num_envs": 8, "share_params": False, "env_options": '{"rewards": "scoring,checkpoints"}'}


def _zhang_grf():
    # §5: "parameter-independent in GRF, according to the ... heterogeneity of agents" (HAPPO's default already).
    return {f"{a}_{s}": dict(algo=a, env=f"grf_{s}", total_env_steps=n)
            for a in ("mappo", "happo", "a2po", "b2mapo") for s, n in ZHANG_GRF_STEPS.items()}


def _fig9():
    # The same ε for both kinds of ratio (A.6); value function not clipped, as in Fig. 3.
    return {f"{a}_{m}_{_tag(e)}": dict(algo=a, map=m, total_env_steps=FULL_STEPS, clip_eps=e, value_clip=False)
            for a in ("mappo", "jrppo") for m in ("10m_vs_11m", "27m_vs_30m") for e in (0.1, 0.3, 0.5)}


LI_ALGOS = ("maac", "maddpg", "mamd", "mamt")
# Table 10's tasks: env keys and episode length (steps) per episode.
LI_TASKS = {"spread2": (dict(env="spread", num_agents=2), 25),
            "multiwalker3": (dict(env="pz_multiwalker", env_options='{"max_cycles": 500}'), 500),
            "rovertower8": (dict(env="rover_tower"), 25),
            "pursuit8": (dict(env="pursuit"), 500)}
LI_FULL_EPISODES = 50_000
# Table 10's other baselines: MA-PPO on all four tasks, LOLA (+DQN) on Spread only ("LOLA is only compared in
# the Spread environment due to the poor scalability", §5). Each run starts from its own algorithm's defaults
# (Table 6 for ma_ppo, an on-policy run; Table 7 for lola_dqn), since the experiment's base keys are family-free.
LI_BASELINES = {"ma_ppo": tuple(LI_TASKS), "lola_dqn": ("spread2",)}


def _li_table10():
    runs = {f"{a}_{task}": dict(algo=a, total_env_steps=LI_FULL_EPISODES * length, **keys)
            for task, (keys, length) in LI_TASKS.items() for a in LI_ALGOS}
    for a, tasks in LI_BASELINES.items():
        for task in tasks:
            keys, length = LI_TASKS[task]
            runs[f"{a}_{task}"] = dict(algo=a, total_env_steps=LI_FULL_EPISODES * length, **keys)
    return runs


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("sun2022-fig1", "ratio min/max vs optimisation epoch, per clip value, 2s3z", _fig1, "ratio-range",
               {"update": "first"}, scaled=False),
    Experiment("sun2022-fig2", "CDF of per-agent and summed TV over 100 epochs of the first update", _fig2,
               "tv-cdf", {"source": "trust_region"}, scaled=False),
    Experiment("sun2022-fig3", "returns and summed TV over training per clip value (2s3z, 10m_vs_11m)", _fig3,
               "returns-tv"),
    Experiment("sun2022-fig4", "IPPO vs MAPPO on maps with 3-27 agents", _fig4, "ippo-vs-mappo"),
    Experiment("sun2022-fig5", "MAPPO's win rate, return and summed TV on maps with 3-27 agents (fig4's runs)",
               None, "returns-tv", shares="sun2022-fig4", select=lambda c: c["algo"] == "mappo"),
    Experiment("sun2022-fig6", "IPPO's win rate and return on maps with 3-27 agents (fig4's runs)", None,
               "ippo-vs-mappo", shares="sun2022-fig4", select=lambda c: c["algo"] == "ippo"),
    Experiment("sun2022-fig7", "CDF of the summed TV per epoch at clip 0.1 for 5-20 epochs (2s3z, 10m_vs_11m)",
               _fig7, "tv-cdf", {"source": "trust_region"}, scaled=False),
    Experiment("sun2022-fig8", "returns, summed TV and win rate for clip values below 0.1 (5-27 agents)", _fig8,
               "returns-tv"),
    Experiment("sun2022-fig9", "joint (JR-PPO) vs independent clipping on 10m_vs_11m and 27m_vs_30m", _fig9,
               "joint-vs-independent"),
    Experiment("sun2022-fig10", "win rate of joint vs independent clipping (the runs of sun2022-fig9)", None,
               "joint-vs-independent", {"rows": ("win_rate",)}, shares="sun2022-fig9"),
    Experiment("zhang2024-smax", "MAPPO, HAPPO, A2PO and B2MAPO on hard SMAX maps (Zhang et al. 2024, Fig. 4)",
               _zhang_smax, "ippo-vs-mappo"),
    Experiment("zhang2024-grf", "MAPPO, HAPPO, A2PO and B2MAPO on GRF academy_counterattack_easy/hard "
               "(Zhang et al. 2024, Fig. 5), host path", _zhang_grf, "ippo-vs-mappo", base=GRF_BASE,
               table=tuple({"metric": m, "by": ("algo", "env"), "columns": "env", "window": "tail:0.2"}
                           for m in ("win_rate", "return"))),
    Experiment("li2023-table10", "MAAC, MADDPG, MAMD, MAMT and MA-PPO on Spread-2, Multi-Walker-3, Rover-Tower-8, "
               "Pursuit-8, LOLA-DQN on Spread-2 (Li et al. Table 10), mean ± std over seeds of the final training "
               "return", _li_table10, "",
               base=OFF_POLICY_BASE, table={"by": ("algo", "env"), "columns": "env", "window": "tail:0.1"}),
)}


def _is_host_env(cfg: dict) -> bool:
    from trustmarl.envs import ENVS
    entry = ENVS.get(cfg.get("env", ""))
    return bool(entry is not None and entry.host)


def plan(name: str, budget: float = 0.01, seeds: int = 1, overrides: dict | None = None,
         only: list[str] | None = None) -> dict[str, dict]:
    """The configs an experiment runs, after scaling the budget and applying ``overrides``; ``only``: the
    runs whose name matches one of these shell patterns (e.g. ``*_spread2``), all when None."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment {name!r} is unknown; allowed: {', '.join(EXPERIMENTS)}")
    if not 0 < budget <= 1:
        raise ValueError(f"budget={budget} must be in (0, 1] (a fraction of the paper's env steps)")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds={seeds!r} must be an integer >= 1")
    exp = EXPERIMENTS[name]
    if exp.shares:
        shared = plan(exp.shares, budget, seeds, overrides, only)
        return {k: c for k, c in shared.items() if exp.select is None or exp.select(c)}
    runs = exp.runs()
    if only:
        from fnmatch import fnmatchcase
        runs = {k: v for k, v in runs.items() if any(fnmatchcase(k, p) for p in only)}
        if not runs:
            raise ValueError(f"only={' '.join(only)} matches no run of {name}; allowed: {', '.join(exp.runs())}")
    out = {}
    base = BASE if exp.base is None else exp.base
    per_run = _overrides_by_run(runs, overrides or {})
    for run_name, cfg in runs.items():
        cfg = {**base, **cfg, "num_seeds": seeds, **per_run[run_name]}
        if exp.scaled and "total_env_steps" not in (overrides or {}):
            per_update = _steps_per_update(cfg)
            cfg["total_env_steps"] = max(per_update, int(cfg["total_env_steps"] * budget))
        if _is_host_env(cfg) and cfg["num_seeds"] > 1:
            # the host path runs one seed per process: one run folder per seed (the tables pool them)
            first = cfg.get("seed", 0)
            for k in range(cfg["num_seeds"]):
                out[f"{run_name}_seed{first + k}"] = {**cfg, "num_seeds": 1, "seed": first + k}
            continue
        out[run_name] = cfg
    return out


def _overrides_by_run(runs: dict[str, dict], overrides: dict) -> dict[str, dict]:
    """Per run, the ``overrides`` its algorithm reads: an experiment mixing families (li2023-table10's on-policy
    MA-PPO beside off-policy runs) takes one ``--set`` line whose family keys (``collect_steps``,
    ``rollout_length``) reach only the runs that read them; a key no run of the plan reads is an error. A key
    that is no config key at all goes to every run, so that :meth:`Config.build` names it (with its near match)."""
    from trustmarl.config import Config
    default_algo = Config._field("algo").default
    read = {name: {f.name for f in Config.keys_for(overrides.get("algo", cfg.get("algo", default_algo)))}
            for name, cfg in runs.items()}
    known = {f.name for f in Config.keys_for()}
    read = {name: keys | (set(overrides) - known) for name, keys in read.items()}
    unread = [k for k in overrides if not any(k in keys for keys in read.values())]
    if unread:
        raise ValueError(f"--set {', '.join(unread)}: read by no run of this plan (algorithms "
                         f"{', '.join(sorted({c.get('algo', '') for c in runs.values()}))})")
    return {name: {k: v for k, v in overrides.items() if k in read[name]} for name in runs}


def _steps_per_update(cfg: dict) -> int:
    """Env steps of one update of ``cfg``: ``num_envs`` × (``collect_steps`` for the off-policy family,
    ``rollout_length`` for the on-policy one), each key at its algorithm's default when not set."""
    from trustmarl.config import Config
    c = Config.build({k: v for k, v in cfg.items() if k != "total_env_steps"})
    return c.derived(1).steps_per_update


def reproduce(name: str, out_dir: str | Path = "runs/reproduce", budget: float = 0.01, seeds: int = 1,
              overrides: dict | None = None, skip_existing: bool = True, only: list[str] | None = None) -> Path:
    """Run every configuration of experiment ``name`` and draw its figure; returns the PNG's path (the
    Markdown table's for an experiment that has a table and no figure; one with both writes both).

    An experiment that ``shares`` another's runs (Fig. 10 reads Fig. 9's) uses that experiment's folder, so
    runs already done there are kept and the two figures always show the same runs."""
    from trustmarl import runtime as run
    from trustmarl.analysis import figures
    from trustmarl.config import Config
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment {name!r} is unknown; allowed: {', '.join(EXPERIMENTS)}")
    exp = EXPERIMENTS[name]
    root = Path(out_dir) / (exp.shares or name)
    root.mkdir(parents=True, exist_ok=True)
    configs = plan(name, budget, seeds, overrides, only)
    built = {k: Config.build(v) for k, v in configs.items()}  # validate everything before the first run
    dirs = []
    for i, (run_name, config) in enumerate(built.items()):
        d = root / run_name
        dirs.append(d)
        if skip_existing and (d / "summary.json").exists():
            print(f"[{i + 1}/{len(built)}] {run_name}: done before, kept")
            continue
        print(f"[{i + 1}/{len(built)}] {run_name}: {config.total_env_steps:,} env steps")
        s = run.train(config.replace(run_name=run_name, out_dir=str(root)), run_dir=d)
        print(f"    return {s['final_return']:.3f}, win {s['final_win_rate']:.2f}, "
              f"{s['env_steps_per_s']:,.0f} env-steps/s")
    out = None
    if exp.figure:
        out = figures.FIGURES[exp.figure](dirs, root / f"{name}.png", **exp.figure_kwargs)
    if exp.table is not None:
        table = _write_table(exp, dirs, root / f"{name}.md")
        out = out or table
    (root / f"{name}.json").write_text(json.dumps({"name": name, "doc": exp.doc, "budget": budget,
                                                   "seeds": seeds, "runs": configs}, indent=2, default=str))
    return Path(out)


def _write_table(exp: Experiment, dirs: list, path: Path) -> Path:
    """The experiment's Markdown table (:func:`trustmarl.analysis.tables.make_table`) to ``path``, printed too."""
    from trustmarl.analysis.tables import make_table
    specs = (exp.table,) if isinstance(exp.table, dict) else exp.table
    tables = [make_table(dirs, **spec) for spec in specs]
    text = f"# {exp.doc}\n\n" + "\n\n".join(t.markdown() for t in tables)
    path.write_text(text)
    print(text)
    return path
