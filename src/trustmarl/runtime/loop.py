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
the last checkpoint, drops log rows and TensorBoard events written after it and continues: a run killed
anywhere (even during a checkpoint or log write) loses at most the updates since its last checkpoint and,
resumed, ends bit-identical to an uninterrupted run on the CPU (docs/reliability.md). Every chunk (and its
compilation) runs under the stall watchdog.

Guards (:mod:`.errors`): a chunk whose ``nonfinite`` metric is set stops the run before anything of it is
saved (:class:`~.errors.NonFiniteError`); Ctrl-C or SIGTERM stops after the current chunk with a checkpoint
(:class:`~.errors.RunInterrupted`); a failed checkpoint write keeps the previous one
(:class:`~.errors.CheckpointWriteError`).
"""
from __future__ import annotations

import io
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from trustmarl.config import Config, ConfigError
from trustmarl.runtime import faults
from trustmarl.runtime.checkpoints import cleanup_tmp, latest_checkpoint, restore_checkpoint, save_checkpoint
from trustmarl.runtime.errors import NonFiniteError, RunInterrupted
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
    _atomic_write(run_dir / "config.json", json.dumps(info, indent=2, default=str), "config")


def _atomic_write(path: Path, text: str, fault_point: Optional[str] = None):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    if fault_point:
        faults.hit(fault_point)
    os.replace(tmp, path)


def read_run_info(run_dir: Path) -> dict:
    """config.json of a run folder as written by :func:`write_config`: read as JSON only (never executed or
    unpickled); one-line errors for a missing folder, a missing file, or a file that is not a JSON object."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(run_dir)!r} does not exist; allowed: a folder written by "
                                f"`trustmarl train` (it holds config.json)")
    path = run_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a JSON config ({' '.join(str(err).split())}); allowed: the config.json "
                         f"`trustmarl train` writes (read as JSON only, never executed)") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path} holds a JSON {type(info).__name__}; allowed: a JSON object of config keys")
    return info


def load_config(run_dir: Path, overrides: Optional[dict] = None) -> Config:
    """The config of a run folder (its config.json), with ``overrides`` (key -> value) on top."""
    raw = read_run_info(run_dir)
    names = set(Config.__dataclass_fields__) & set(_read_keys(raw))
    saved = {k: v for k, v in raw.items() if k in names}
    try:
        base = Config.build(saved)
    except ConfigError as err:
        raise ConfigError(f"{Path(run_dir) / 'config.json'}: {err}") from None
    return Config.build({**saved, **overrides}) if overrides else base


def _read_keys(raw: dict) -> list:
    """The keys of a saved config the algorithm reads (config.json holds every field; a field of a section the
    algorithm does not read is at its default and must not be passed back, or the build refuses it)."""
    from dataclasses import fields
    from trustmarl.algos import ALGORITHMS
    from trustmarl.config import FAMILY_SECTIONS
    algo = raw.get("algo")
    if algo not in ALGORITHMS:
        return list(raw)  # the build names the unknown algorithm
    sections_for = getattr(Config, "sections_for", None)
    try:
        sections = sections_for(algo, raw.get("update_order")) if sections_for else \
            FAMILY_SECTIONS[ALGORITHMS[algo].family]
    except Exception:  # noqa: BLE001 - a bad saved value: the build reports it
        return list(raw)
    return [f.name for f in fields(Config) if f.metadata["section"] in sections and f.name in raw]


def host_env_fn(config: Config):
    """The zero-argument ParallelEnv constructor of a host-path config (its env's factory and options)."""
    from trustmarl.envs import resolve_env
    return resolve_env(config.env).make(**(json.loads(config.env_options) if config.env_options else {}))


def host_driver_class(config: Config):
    """The host-path driver of the config's algorithm family (on-policy: rollouts then ``learn``; off-policy:
    collection into the replay buffer then the learning phase)."""
    from trustmarl.algos import ALGORITHMS
    from trustmarl.runtime.drivers import HostDriver
    if config.algo in ALGORITHMS and ALGORITHMS[config.algo].family == "off_policy":
        from trustmarl.offpolicy.host import OffPolicyHostDriver
        return OffPolicyHostDriver
    return HostDriver


def make_driver(config: Config, env=None, **host_options):
    """The driver for ``config``: the host driver for host-path envs (``host_options`` go to
    :class:`~trustmarl.runtime.drivers.HostDriver`), else the JAX driver (``env``: an already-built JAX
    env, e.g. ``as_jax_env(my_env)``)."""
    from trustmarl.envs import resolve_env
    from trustmarl.runtime.drivers import JaxDriver
    from trustmarl.trainers import make_train
    entry = resolve_env(config.env)
    if env is None and entry.host:
        return host_driver_class(config)(config, host_env_fn(config), **host_options)
    return JaxDriver(make_train(config, env=env))


def train(config: Config, run_dir: Optional[Path] = None, resume: bool = False, console=None, env=None, *,
          driver=None, write: bool = True, plot: bool = True, num_updates: Optional[int] = None,
          collect_metrics: bool = False, stop_on_nonfinite: bool = True) -> dict:
    """Run (or resume) a training job; returns a summary dict (final return, env-steps/s, paths).

    ``driver`` overrides the driver chosen from the config (the host path's :func:`host_train` passes
    its own); ``write=False`` writes no run folder; ``num_updates`` overrides the budget's update count;
    ``collect_metrics`` adds ``metrics`` (numpy arrays ``[S, updates, ...]``) to the summary;
    ``stop_on_nonfinite=False`` trains on through NaN/inf (the ``nonfinite`` metric still records them).

    Raises :class:`~trustmarl.runtime.errors.NonFiniteError`, :class:`~trustmarl.runtime.errors.RunInterrupted`
    (Ctrl-C/SIGTERM, after a checkpoint) and :class:`~trustmarl.runtime.errors.CheckpointWriteError`.
    """
    if write and (driver.trainer.config if driver is not None else config).wandb:
        from trustmarl.runtime.logging import require_wandb
        require_wandb()  # before a driver is built, an env started or a run folder made
    driver = driver if driver is not None else make_driver(config, env)
    try:
        return _loop(driver, run_dir, resume, console, write, plot, num_updates, collect_metrics,
                     stop_on_nonfinite)
    finally:
        driver.close()


class _StopOnSignal:
    """While active (main thread only), the first SIGINT/SIGTERM asks the loop to stop after the current
    chunk; a second one raises KeyboardInterrupt at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: Optional[int] = None
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        # One os.write, not sys.stderr: the handler runs between two bytecodes of the main thread, which may be
        # inside sys.stderr's own buffered write, where a second write raises "reentrant call" and the message
        # is lost (or the exception lands in code that swallows it).
        msg = (f"trustmarl: {signal.Signals(signum).name}: stopping after this chunk with a checkpoint "
               f"(again to abort at once)\n")
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            fd = None  # a stream without a file (captured output): its own write is all there is
        if fd is not None:
            try:
                sys.stderr.flush()  # what the main thread wrote before goes first
            except (OSError, ValueError, RuntimeError):
                pass  # "reentrant call": the main thread is inside that flush
        try:
            if fd is None:
                sys.stderr.write(msg)
            else:
                os.write(fd, msg.encode())
        except (OSError, ValueError, RuntimeError):
            pass  # a lost message must not turn a clean stop into a crash

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
        return False


def first_nonfinite(metrics: dict) -> Optional[tuple[int, list[int], list[str]]]:
    """``(update index in the chunk, seeds, kinds)`` of the first update whose ``nonfinite`` flag is set,
    or None (also when the trainer reports no such metric)."""
    import numpy as np
    flags = metrics.get("nonfinite")
    if flags is None:
        return None
    flags = np.asarray(flags).astype(np.int64).reshape(flags.shape[0], flags.shape[1])  # [S, n]
    bad = flags != 0
    if not bad.any():
        return None
    from trustmarl.trainers.on_policy import NONFINITE_BITS
    u = int(np.argmax(bad.any(0)))
    seeds = [int(s) for s in np.flatnonzero(bad[:, u])]
    bits = int(np.bitwise_or.reduce(flags[seeds, u]))
    kinds = [name for bit, name in NONFINITE_BITS.items() if bits & bit] or [f"flags {bits}"]
    return u, seeds, kinds


def _loop(driver, run_dir, resume, console, write, plot, num_updates, collect_metrics,
          stop_on_nonfinite=True) -> dict:
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
        cleanup_tmp(run_dir)  # what a killed checkpoint write left behind
        step = latest_checkpoint(run_dir)
        if step is not None:
            state = restore_checkpoint(run_dir, state, step)
            done_updates = int(step)
        if done_updates > n_total:
            raise ConfigError(f"the run in {run_dir} has {done_updates} updates, more than the budget's {n_total}; "
                              f"allowed: total_env_steps >= {done_updates * steps_per_update}")
    faults.hit("init")
    logger = None
    if write:
        extra = {"host_env": {"name": trainer.spec.name, "global_state": driver.global_state}} \
            if hasattr(driver, "global_state") else {}
        extra["devices_used"] = [str(d) for d in getattr(driver, "devices", [])]
        write_config(run_dir, trainer, extra)
        logger = RunLogger(run_dir, trainer.num_agents, steps_per_update,
                           resume_from=done_updates if resume else None,
                           wandb_config=_wandb_config(trainer, driver) if c.wandb else None,
                           wandb_project=c.wandb_project)
    progress = _Progress(c.progress, n_total * steps_per_update, console)
    progress.start(done_updates * steps_per_update)
    t0 = time.perf_counter()
    compile_s = 0.0
    last_ckpt = done_updates
    steps_run = 0
    first_done = done_updates
    last_return, last_win = (logger.last_return, logger.last_win) if logger is not None else (math.nan, math.nan)
    history = []
    stop = _StopOnSignal()
    try:
        with stop:
            done_updates, last_ckpt, steps_run, compile_s, last_return, last_win = _chunks(
                driver, state, run_dir, write, n_total, chunk, ckpt_every, done_updates, last_ckpt, steps_run,
                compile_s, first_done, last_return, last_win, logger, progress, history, collect_metrics,
                stop, stop_on_nonfinite)
    finally:
        progress.stop()
        if logger is not None:
            logger.close(failed=sys.exc_info()[0] is not None)
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
        faults.hit("summary")
        _atomic_write(run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    if collect_metrics:
        summary["metrics"] = {k: np.concatenate([h[k] for h in history], axis=1) for k in history[0]} \
            if history else {}
    return summary


def _wandb_config(trainer, driver) -> dict:
    """What W&B records as the run's config: the resolved keys, the derived values, the devices used."""
    return {**trainer.config.to_dict(), "derived": trainer.derived._asdict(), "num_agents_env": trainer.num_agents,
            "devices_used": [str(d) for d in getattr(driver, "devices", [])]}


def _chunks(driver, state, run_dir, write, n_total, chunk, ckpt_every, done_updates, last_ckpt, steps_run,
            compile_s, first_done, last_return, last_win, logger, progress, history, collect_metrics, stop,
            stop_on_nonfinite):
    """The chunk loop of :func:`_loop`; returns the counters it advanced."""
    import numpy as np
    c = driver.trainer.config
    steps_per_update = driver.trainer.derived.steps_per_update
    while done_updates < n_total:
        if stop.signum is not None:
            if write and done_updates > last_ckpt:
                save_checkpoint(run_dir, state, done_updates)
                last_ckpt = done_updates
            saved = f"checkpoint of update {last_ckpt} in {Path(run_dir) / 'checkpoints'}; `trustmarl resume " \
                    f"{run_dir}` continues" if write and last_ckpt else "nothing was saved"
            raise RunInterrupted(f"interrupted ({signal.Signals(stop.signum).name}) after update {done_updates} of "
                                 f"{n_total}; {saved}", done_updates, stop.signum)
        n = min(chunk, n_total - done_updates)
        what = f"the jitted chunk of updates {done_updates + 1}-{done_updates + n}"
        faults.hit("chunk")
        t = time.perf_counter()
        with StallWatchdog(c.stall_timeout, "compiling " + what):
            compiled = driver.compile(state, n)
        if compiled:
            compile_s += time.perf_counter() - t
        t = time.perf_counter()
        with StallWatchdog(c.stall_timeout, what):
            new_state, metrics = driver.run(state, n)
        if done_updates == first_done and not compiled:  # compiled inside its first run (host path)
            compile_s += (time.perf_counter() - t) / n
        metrics = {k: np.asarray(v) for k, v in metrics.items()}
        bad = first_nonfinite(metrics) if stop_on_nonfinite else None
        if bad is not None:  # log the updates up to the first bad one, save nothing of this chunk, stop
            u, seeds, kinds = bad
            if logger is not None:
                logger.log_chunk({k: v[:, : u + 1] for k, v in metrics.items()}, done_updates)
            raise NonFiniteError(_nonfinite_message(done_updates + u + 1, seeds, kinds, run_dir if write else None,
                                                    last_ckpt if write else None, driver.num_seeds),
                                 done_updates + u + 1, kinds, last_ckpt if write else None)
        state = new_state
        if collect_metrics:
            history.append(metrics)
        if logger is not None:
            logger.log_chunk(metrics, done_updates)
            last_return, last_win = logger.last_return, logger.last_win
        else:
            last_return, last_win = _last_finite(metrics, "return_mean", last_return), \
                _last_finite(metrics, "win_rate", last_win)
        faults.hit("logged")
        done_updates += n
        steps_run += n * steps_per_update
        if write and (done_updates - last_ckpt >= ckpt_every or done_updates == n_total):
            faults.hit("before_save")
            save_checkpoint(run_dir, state, done_updates)
            faults.hit("saved")
            last_ckpt = done_updates
        progress.update(done_updates * steps_per_update, last_return, last_win)
    return done_updates, last_ckpt, steps_run, compile_s, last_return, last_win


def _nonfinite_message(update: int, seeds: list, kinds: list, run_dir, last_ckpt, num_seeds: int) -> str:
    where = f"update {update}" + (f" (seed {', '.join(map(str, seeds))})" if num_seeds > 1 else "")
    if run_dir is None:
        saved = "nothing is written without a run folder"
    elif last_ckpt:
        saved = (f"the last good checkpoint (update {last_ckpt}, {Path(run_dir) / 'checkpoints'}) is untouched; fix "
                 f"the cause (e.g. a smaller lr, the env's outputs), then `trustmarl resume {run_dir} [key=value ...]`")
    else:
        saved = f"no checkpoint was written before it; `trustmarl resume {run_dir} [key=value ...]` starts over"
    what = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} and {kinds[-1]}"
    return (f"non-finite values (NaN/inf) in {what} at {where}; the run stopped at the end of "
            f"that chunk and saved nothing of it; {saved}")


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
    if num_updates is not None and (not isinstance(num_updates, int) or num_updates < 1):
        raise ValueError(f"num_updates={num_updates!r} must be a positive integer")
    if resume and run_dir is None:
        raise ValueError("resume=True needs run_dir (the folder holding the checkpoints)")
    driver = host_driver_class(config)(config, env_fn, async_=async_, episode_limit=episode_limit, context=context)
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
