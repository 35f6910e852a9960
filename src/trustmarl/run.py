"""Running a training job: run folder, progress, CSV/TensorBoard logging, atomic checkpoints, resume.

A run folder holds::

    config.json          resolved config, derived values and the env spec
    metrics.csv          one row per (seed, update): env_steps, return_mean, win_rate, losses, and per-agent
                         diagnostics ratio_min_<i>, ratio_max_<i>, clip_frac_<i>, approx_kl_<i>, entropy_<i>,
                         explained_variance_<i>, tv_<i> (last epoch), plus sum_tv, joint_tv_*, joint_kl
    trust_region.csv     one row per (seed, update, epoch): ratio range, TV, KL per agent and joint
    tb/                  TensorBoard events (seed-mean scalars)
    learning_curve.png   return (and win rate) against env steps
    checkpoints/         orbax checkpoints of the whole train state, written atomically (tmp dir + rename)

Training runs as jitted chunks of ``log_every`` updates (``vmap`` over seeds); between chunks the host
logs, draws progress and, every ``checkpoint_every`` updates, saves. ``resume(run_dir)`` restores the last
checkpoint, drops log rows written after it and continues: an interrupted run loses at most the updates
since its last checkpoint.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

import jax
import numpy as np

from trustmarl.config import Config
from trustmarl.trainer import Trainer, TrainState, make_train
from trustmarl.watchdog import StallWatchdog

TR_PREFIX = "tr/"


class RunLogger:
    """Writes metrics.csv, trust_region.csv and TensorBoard scalars from chunk metrics [S, n, ...]."""

    def __init__(self, run_dir: Path, trainer: Trainer, resume_from: int | None = None):
        self.dir = run_dir
        self.trainer = trainer
        self.steps_per_update = trainer.d["steps_per_update"]
        self.metrics_path = run_dir / "metrics.csv"
        self.tr_path = run_dir / "trust_region.csv"
        if resume_from is not None:
            for path in (self.metrics_path, self.tr_path):
                _truncate_csv(path, resume_from)
        self._fields: dict[Path, list[str]] = {}
        for path in (self.metrics_path, self.tr_path):
            if path.exists():
                with open(path, newline="") as fh:
                    header = next(csv.reader(fh), None)
                if header:
                    self._fields[path] = header
        from tensorboardX import SummaryWriter
        self.tb = SummaryWriter(str(run_dir / "tb"))
        self.last_return = float("nan")
        self.last_win = float("nan")

    def _write(self, path: Path, rows: list[dict]):
        if not rows:
            return
        fields = self._fields.get(path)
        new = fields is None
        if new:
            fields = list(rows[0].keys())
            self._fields[path] = fields
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            for r in rows:
                w.writerow({k: _fmt(r.get(k, float("nan"))) for k in fields})

    def log_chunk(self, metrics: dict, first_update: int):
        """``metrics``: dict of arrays [S, n, ...] for updates ``first_update .. first_update+n-1``."""
        m = {k: np.asarray(v) for k, v in metrics.items()}
        S, n = next(iter(m.values())).shape[:2]
        rows, tr_rows = [], []
        for u in range(n):
            update = first_update + u + 1
            for s in range(S):
                row = {"seed": s, "update": update, "env_steps": update * self.steps_per_update}
                for k, v in m.items():
                    if k.startswith(TR_PREFIX):
                        continue
                    _flatten_into(row, k, v[s, u])
                if any(k.startswith(TR_PREFIX) for k in m):
                    epochs = m[TR_PREFIX + "sum_tv"].shape[2]
                    for e in range(epochs):
                        tr = {"seed": s, "update": update, "epoch": e + 1, "env_steps": row["env_steps"]}
                        for k, v in m.items():
                            if k.startswith(TR_PREFIX):
                                _flatten_into(tr, _tr_name(k[len(TR_PREFIX):]), v[s, u, e])
                        tr["ratio_min"] = float(np.nanmin(m[TR_PREFIX + "ratio_min"][s, u, e]))
                        tr["ratio_max"] = float(np.nanmax(m[TR_PREFIX + "ratio_max"][s, u, e]))
                        tr_rows.append(tr)
                    last = tr_rows[-1]
                    for key in ("sum_tv", "joint_tv_bound", "joint_tv_coupling", "joint_tv_mc", "joint_kl"):
                        row[key] = last[key]
                    for i in range(self.trainer.num_agents):
                        row[f"tv_{i}"] = last[f"tv_{i}"]
                rows.append(row)
            means = {k: float(np.nanmean(v[:, u])) for k, v in m.items()
                     if v.ndim == 2 and not k.startswith(TR_PREFIX) and np.isfinite(v[:, u]).any()}
            for k, val in means.items():
                self.tb.add_scalar(k, val, update * self.steps_per_update)
            if TR_PREFIX + "sum_tv" in m:
                self.tb.add_scalar("trust_region/sum_tv", float(np.nanmean(m[TR_PREFIX + "sum_tv"][:, u, -1])),
                                   update * self.steps_per_update)
            if math.isfinite(means.get("return_mean", float("nan"))):
                self.last_return = means["return_mean"]
            if math.isfinite(means.get("win_rate", float("nan"))):
                self.last_win = means["win_rate"]
        self._write(self.metrics_path, rows)
        self._write(self.tr_path, tr_rows)
        self.tb.flush()

    def close(self):
        self.tb.close()


def _tr_name(k: str) -> str:
    return {"tv_mean": "tv", "kl_mean": "kl"}.get(k, k)


def _flatten_into(row: dict, key: str, value):
    value = np.asarray(value)
    if value.ndim == 0:
        row[key] = float(value)
    else:
        for i, x in enumerate(value.reshape(-1)):
            row[f"{key}_{i}"] = float(x)


def _fmt(x):
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.6g}"
    return x


def _truncate_csv(path: Path, last_update: int):
    """Keep only rows with update <= last_update (rows logged after the checkpoint are replayed)."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    col = header.index("update")
    kept = [r for r in body if r and int(float(r[col])) <= last_update]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(kept)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------------
def _manager(run_dir: Path):
    import orbax.checkpoint as ocp
    opts = ocp.CheckpointManagerOptions(max_to_keep=2, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager((run_dir / "checkpoints").absolute(), options=opts)


def save_checkpoint(run_dir: Path, state: TrainState, update: int):
    """Atomic: orbax writes into a temporary folder and renames it when complete."""
    import orbax.checkpoint as ocp
    with _manager(run_dir) as mngr:
        mngr.save(update, args=ocp.args.StandardSave(jax.device_get(state)))
        mngr.wait_until_finished()


def latest_checkpoint(run_dir: Path) -> int | None:
    if not (run_dir / "checkpoints").exists():
        return None
    with _manager(run_dir) as mngr:
        return mngr.latest_step()


def restore_checkpoint(run_dir: Path, target: TrainState, step: int | None = None) -> TrainState:
    import orbax.checkpoint as ocp
    with _manager(run_dir) as mngr:
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {run_dir / 'checkpoints'}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return mngr.restore(step, args=ocp.args.StandardRestore(abstract))


# ---------------------------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------------------------
def seed_keys(config: Config) -> jax.Array:
    return jax.random.split(jax.random.PRNGKey(config.seed), config.num_seeds)


def init_state(trainer: Trainer) -> TrainState:
    return jax.jit(jax.vmap(trainer.init))(seed_keys(trainer.config))


def make_run_dir(config: Config) -> Path:
    name = config.run_name or f"{config.algo}_{config.env}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(config.out_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_config(run_dir: Path, trainer: Trainer):
    c = trainer.config
    info = {**c.to_dict(), "derived": trainer.d, "num_agents_env": trainer.num_agents,
            "env_spec": trainer.spec._asdict(), "clip_eps_effective": trainer.d["clip_eps"]}
    info["num_agents"] = trainer.num_agents
    tmp = run_dir / "config.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, default=str))
    os.replace(tmp, run_dir / "config.json")


def load_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json)")
    raw = json.loads(path.read_text())
    names = {f for f in Config.__dataclass_fields__}
    return Config.build({k: v for k, v in raw.items() if k in names})


def train(config: Config, run_dir: Path | None = None, resume: bool = False, console=None) -> dict:
    """Run (or resume) a training job; returns a summary dict (final return, env-steps/s, paths).

    Host-path envs (PettingZoo, GRF: ``trustmarl list`` marks them) go through :func:`trustmarl.host.host_train`
    with the same learning step and run-folder layout.
    """
    from trustmarl.envs import ENVS
    if ENVS[config.env].host:
        from trustmarl.host import host_train
        env_fn = ENVS[config.env].make(**(json.loads(config.env_options) if config.env_options else {}))
        run_dir = Path(run_dir) if run_dir else make_run_dir(config)
        return host_train(config, env_fn, run_dir=run_dir, resume=resume, console=console)
    trainer = make_train(config)
    run_dir = Path(run_dir) if run_dir else make_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    c = trainer.config
    n_total = trainer.num_updates
    chunk = c.log_every or max(1, n_total // 50)
    ckpt_every = c.checkpoint_every or max(chunk, n_total // 10)
    state = init_state(trainer)
    done_updates = 0
    if resume:
        step = latest_checkpoint(run_dir)
        if step is not None:
            state = restore_checkpoint(run_dir, state, step)
            done_updates = int(step)
    write_config(run_dir, trainer)
    logger = RunLogger(run_dir, trainer, resume_from=done_updates if resume else None)
    run_chunk = jax.jit(jax.vmap(trainer.run_chunk, in_axes=(0, None)), static_argnums=1)
    progress = _Progress(c.progress, n_total * trainer.d["steps_per_update"], console)
    progress.start(done_updates * trainer.d["steps_per_update"])
    t0 = time.perf_counter()
    compile_s = 0.0
    last_ckpt = done_updates
    steps_run = 0
    try:
        while done_updates < n_total:
            n = min(chunk, n_total - done_updates)
            t = time.perf_counter()
            what = f"the jitted chunk of updates {done_updates + 1}-{done_updates + n}"
            if n not in getattr(run_chunk, "_seen", set()):
                with StallWatchdog(c.stall_timeout, "compiling " + what):
                    run_chunk.lower(state, n).compile()
                compile_s += time.perf_counter() - t
                run_chunk._seen = getattr(run_chunk, "_seen", set()) | {n}
            with StallWatchdog(c.stall_timeout, what):
                state, metrics = run_chunk(state, n)
                jax.block_until_ready(state)
            logger.log_chunk(metrics, done_updates)
            done_updates += n
            steps_run += n * trainer.d["steps_per_update"]
            if done_updates - last_ckpt >= ckpt_every or done_updates == n_total:
                save_checkpoint(run_dir, state, done_updates)
                last_ckpt = done_updates
            progress.update(done_updates * trainer.d["steps_per_update"], logger.last_return, logger.last_win)
    finally:
        progress.stop()
        logger.close()
    wall = time.perf_counter() - t0 - compile_s
    png = None
    try:
        png = plot_run(run_dir)
    except Exception as err:  # a plotting failure must not lose a finished run
        print(f"warning: learning curve not drawn: {err}")
    summary = {"run_dir": str(run_dir), "final_return": logger.last_return, "final_win_rate": logger.last_win,
               "env_steps": done_updates * trainer.d["steps_per_update"],
               "env_steps_per_s": steps_run * c.num_seeds / max(wall, 1e-9), "compile_s": compile_s,
               "learning_curve": str(png) if png else None}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def plot_run(run_dir: Path) -> Path:
    from trustmarl.analysis.figures import plot_learning_curve
    return Path(plot_learning_curve(run_dir, run_dir / "learning_curve.png"))


class _Progress:
    """A rich progress bar with env-steps/s and the latest return; plain lines when not a terminal."""

    def __init__(self, enabled: bool, total: int, console=None):
        self.enabled = enabled
        self.total = total
        self.console = console
        self._bar = None
        self._t = None

    def start(self, done: int):
        self._t = (time.perf_counter(), done)
        if not self.enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        self._bar = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} steps"),
                             TextColumn("{task.fields[sps]} steps/s"), TextColumn("return {task.fields[ret]}"),
                             TextColumn("{task.fields[win]}"), TimeRemainingColumn(), console=self.console,
                             transient=False)
        self._bar.start()
        self._task = self._bar.add_task("train", total=self.total, completed=done, sps="-", ret="-", win="")

    def update(self, done: int, ret: float, win: float):
        t0, d0 = self._t
        sps = (done - d0) / max(time.perf_counter() - t0, 1e-9)
        if self._bar is None:
            return
        self._bar.update(self._task, completed=done, sps=f"{sps:,.0f}", ret=f"{ret:.2f}",
                         win="" if math.isnan(win) else f"win {win:.2f}")

    def stop(self):
        if self._bar is not None:
            self._bar.stop()
