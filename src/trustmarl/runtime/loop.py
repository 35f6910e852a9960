"""The run loop: run folder, progress, CSV/TensorBoard logging, atomic checkpoints, resume, stall watchdog.

A run folder holds::

    config.json          resolved config, derived values and the env spec
    metrics.csv          one row per (seed, update): env_steps, return_mean, win_rate, losses, and per-agent
                         diagnostics ratio_min_<i>, ratio_max_<i>, clip_frac_<i>, approx_kl_<i>, entropy_<i>,
                         explained_variance_<i>, tv_<i> (last epoch), plus sum_tv, joint_tv_*, joint_kl
    trust_region.csv     one row per (seed, update, epoch): ratio range, TV, KL per agent and joint
    tb/                  TensorBoard events (seed-mean scalars)
    learning_curve.png   return (and win rate) against env steps
    checkpoints/         orbax checkpoints of the whole train state, written atomically (tmp dir + rename)
    summary.json         final return, env-steps/s, paths

Training runs as chunks of ``log_every`` updates executed by a driver (:mod:`.drivers`: one jitted,
seed-vmapped program for JAX envs; host rollouts + the jitted learning step for Python envs); between
chunks the loop logs, draws progress and, every ``checkpoint_every`` updates, saves. ``resume`` restores
the last checkpoint, drops log rows written after it and continues: an interrupted run loses at most the
updates since its last checkpoint. Every chunk (and its compilation) runs under the stall watchdog.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

from trustmarl.config import Config
from trustmarl.runtime.checkpoints import latest_checkpoint, restore_checkpoint, save_checkpoint
from trustmarl.runtime.logging import RunLogger
from trustmarl.runtime.watchdog import StallWatchdog


def make_run_dir(config: Config) -> Path:
    env = config.env.replace(":", "-").replace("/", "-")  # package.module:factory names a folder too
    name = config.run_name or f"{config.algo}_{env}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(config.out_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_config(run_dir: Path, trainer, extra: Optional[dict] = None):
    """config.json: the resolved config, the derived values, the env spec (atomic write)."""
    c = trainer.config
    info = {**c.to_dict(), "derived": trainer.derived._asdict(), "num_agents_env": trainer.num_agents,
            "env_spec": trainer.spec._asdict(), "clip_eps_effective": trainer.derived.clip_eps,
            "family": trainer.family, **(extra or {})}
    info["num_agents"] = trainer.num_agents
    tmp = run_dir / "config.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, default=str))
    os.replace(tmp, run_dir / "config.json")


def read_run_info(run_dir: Path) -> dict:
    """config.json of a run folder as written by :func:`write_config`."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json)")
    return json.loads(path.read_text())


def load_config(run_dir: Path) -> Config:
    raw = read_run_info(run_dir)
    names = set(Config.__dataclass_fields__)
    return Config.build({k: v for k, v in raw.items() if k in names})


def host_env_fn(config: Config):
    """The zero-argument ParallelEnv constructor of a host-path config (its env's factory and options)."""
    from trustmarl.envs import resolve_env
    return resolve_env(config.env).make(**(json.loads(config.env_options) if config.env_options else {}))


def make_driver(config: Config, env=None, **host_options):
    """The driver for ``config``: the host driver for host-path envs (``host_options`` go to
    :class:`~trustmarl.runtime.drivers.HostDriver`), else the JAX driver (``env``: an already-built JAX
    env, e.g. ``as_jax_env(my_env)``)."""
    from trustmarl.envs import resolve_env
    from trustmarl.runtime.drivers import HostDriver, JaxDriver
    from trustmarl.trainers import make_train
    entry = resolve_env(config.env)
    if env is None and entry.host:
        return HostDriver(config, host_env_fn(config), **host_options)
    return JaxDriver(make_train(config, env=env))


def train(config: Config, run_dir: Optional[Path] = None, resume: bool = False, console=None, env=None, *,
          driver=None, write: bool = True, plot: bool = True, num_updates: Optional[int] = None,
          collect_metrics: bool = False) -> dict:
    """Run (or resume) a training job; returns a summary dict (final return, env-steps/s, paths).

    ``driver`` overrides the driver chosen from the config (the host path's :func:`host_train` passes
    its own); ``write=False`` writes no run folder; ``num_updates`` overrides the budget's update count;
    ``collect_metrics`` adds ``metrics`` (numpy arrays ``[S, updates, ...]``) to the summary.
    """
    driver = driver if driver is not None else make_driver(config, env)
    try:
        return _loop(driver, run_dir, resume, console, write, plot, num_updates, collect_metrics)
    finally:
        driver.close()


def _loop(driver, run_dir, resume, console, write, plot, num_updates, collect_metrics) -> dict:
    import numpy as np
    trainer = driver.trainer
    c = trainer.config
    steps_per_update = trainer.derived.steps_per_update
    if write:
        run_dir = Path(run_dir) if run_dir else make_run_dir(c)
        run_dir.mkdir(parents=True, exist_ok=True)
    elif resume:
        raise ValueError("resume=True needs a run folder (write=True and run_dir)")
    n_total = num_updates or trainer.num_updates
    chunk = c.log_every or max(1, n_total // 50)
    ckpt_every = c.checkpoint_every or max(chunk, n_total // 10)
    state = driver.init()
    done_updates = 0
    if resume:
        step = latest_checkpoint(run_dir)
        if step is not None:
            state = restore_checkpoint(run_dir, state, step)
            done_updates = int(step)
    logger = None
    if write:
        extra = {"host_env": {"name": trainer.spec.name, "global_state": driver.global_state}} \
            if hasattr(driver, "global_state") else None
        write_config(run_dir, trainer, extra)
        logger = RunLogger(run_dir, trainer.num_agents, steps_per_update,
                           resume_from=done_updates if resume else None)
    progress = _Progress(c.progress, n_total * steps_per_update, console)
    progress.start(done_updates * steps_per_update)
    t0 = time.perf_counter()
    compile_s = 0.0
    last_ckpt = done_updates
    steps_run = 0
    first_done = done_updates
    last_return, last_win = float("nan"), float("nan")
    history = []
    try:
        while done_updates < n_total:
            n = min(chunk, n_total - done_updates)
            what = f"the jitted chunk of updates {done_updates + 1}-{done_updates + n}"
            t = time.perf_counter()
            with StallWatchdog(c.stall_timeout, "compiling " + what):
                compiled = driver.compile(state, n)
            if compiled:
                compile_s += time.perf_counter() - t
            t = time.perf_counter()
            with StallWatchdog(c.stall_timeout, what):
                state, metrics = driver.run(state, n)
            if done_updates == first_done and not compiled:  # compiled inside its first run (host path)
                compile_s += (time.perf_counter() - t) / n
            metrics = {k: np.asarray(v) for k, v in metrics.items()}
            if collect_metrics:
                history.append(metrics)
            if logger is not None:
                logger.log_chunk(metrics, done_updates)
                last_return, last_win = logger.last_return, logger.last_win
            else:
                last_return, last_win = _last_finite(metrics, "return_mean", last_return), \
                    _last_finite(metrics, "win_rate", last_win)
            done_updates += n
            steps_run += n * steps_per_update
            if write and (done_updates - last_ckpt >= ckpt_every or done_updates == n_total):
                save_checkpoint(run_dir, state, done_updates)
                last_ckpt = done_updates
            progress.update(done_updates * steps_per_update, last_return, last_win)
    finally:
        progress.stop()
        if logger is not None:
            logger.close()
    wall = time.perf_counter() - t0 - compile_s
    summary: dict[str, Any] = {
        "run_dir": str(run_dir) if write else None, "final_return": last_return, "final_win_rate": last_win,
        "env_steps": done_updates * steps_per_update,
        "env_steps_per_s": steps_run * driver.num_seeds / max(wall, 1e-9), "compile_s": compile_s,
        "spec": trainer.spec._asdict()}
    if hasattr(driver, "env_s"):
        summary["env_step_s"] = driver.env_s
    if write:
        png = None
        if plot:
            try:
                png = plot_run(run_dir)
            except Exception as err:  # a plotting failure must not lose a finished run
                print(f"warning: learning curve not drawn: {err}")
        summary["learning_curve"] = str(png) if png else None
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if collect_metrics:
        summary["metrics"] = {k: np.concatenate([h[k] for h in history], axis=1) for k in history[0]} \
            if history else {}
    return summary


def _last_finite(metrics: dict, key: str, previous: float) -> float:
    import numpy as np
    if key not in metrics:
        return previous
    v = np.nanmean(metrics[key][:, -1]) if np.isfinite(metrics[key][:, -1]).any() else float("nan")
    return float(v) if math.isfinite(v) else previous


def host_train(config: Config, env_fn: Callable[[], Any], run_dir=None, *, num_updates: Optional[int] = None,
               async_: bool = True, episode_limit: Optional[int] = None, resume: bool = False,
               plot: bool = True, console=None, context: Optional[str] = "spawn") -> dict:
    """Train on a PettingZoo ParallelEnv stepped on the host (the same loop, the host driver).

    Args:
      config: ``num_envs``, ``rollout_length``, the budget and every learning setting as for JAX envs;
        ``num_seeds`` must be 1; ``global_state="auto"`` means ``concat_obs``; ``config.env`` only selects
        presets, the env is ``env_fn``.
      env_fn: zero-argument picklable callable returning a fresh ParallelEnv (e.g.
        ``functools.partial(pursuit_v5.parallel_env, max_cycles=100)``).
      run_dir: run folder; None writes nothing and only returns the metrics.
      num_updates: overrides the number of updates derived from ``total_env_steps``.
      async_: worker processes (True) or in-process stepping (False).
      episode_limit: overrides the env's ``max_cycles``.
      resume: continue from the last checkpoint in ``run_dir`` (the envs start fresh episodes).

    Returns the run summary plus ``metrics``: numpy arrays ``[updates, ...]`` of the updates run.
    """
    from trustmarl.runtime.drivers import HostDriver
    if num_updates is not None and (not isinstance(num_updates, int) or num_updates < 1):
        raise ValueError(f"num_updates={num_updates!r} must be a positive integer")
    if resume and run_dir is None:
        raise ValueError("resume=True needs run_dir (the folder holding the checkpoints)")
    driver = HostDriver(config, env_fn, async_=async_, episode_limit=episode_limit, context=context)
    summary = train(config, Path(run_dir) if run_dir is not None else None, resume, console, driver=driver,
                    write=run_dir is not None, plot=plot, num_updates=num_updates, collect_metrics=True)
    summary["metrics"] = {k: v[0] for k, v in summary["metrics"].items()}
    return summary


def plot_run(run_dir: Path) -> Path:
    from trustmarl.analysis.figures import plot_learning_curve
    return Path(plot_learning_curve(run_dir, run_dir / "learning_curve.png"))


class _Progress:
    """A rich progress bar with env-steps/s and the latest return; nothing when disabled."""

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
