"""``trustmarl sweep``: grid or random search over config values × seeds on Ray Tune.

Every trial is one ordinary training run (:func:`trustmarl.runtime.train`) whose seeds are vmapped inside the
trial (``num_seeds=``), written as a normal run folder under one sweep folder::

    runs/sweeps/NAME/
      sweep.json             the sweep's words and options (what --resume reads)
      tune/                  Ray Tune's experiment folder (trial results, experiment state for restore)
      t00000_algo=ippo_lr=0.001/   one run folder per trial: config.json, metrics.csv, trust_region.csv, ...
      t00001_algo=mappo_lr=0.001/

so ``trustmarl table NAME`` and ``trustmarl plot curves NAME`` read a sweep like any set of runs.

**Grammar** of the words (one ``key=SPEC`` per config key; ``trustmarl train --keys`` lists the keys)::

    key=v                    fixed value (env=smax)
    key=v1,v2,...            grid: every value is tried (algo=ippo,mappo)
    key=grid:v1,v2,...       the same, explicitly
    key=choice:v1,v2,...     random search: one value drawn per trial
    key=uniform:a,b          random search: a float drawn uniformly from [a, b]
    key=loguniform:a,b       random search: a float drawn log-uniformly from [a, b] (a > 0)
    key=randint:a,b          random search: an integer drawn from [a, b) (Tune's convention)

Keys whose value itself holds commas take ``/`` between alternatives: ``hidden=64,64/128,128`` is a grid of
two network shapes, ``hidden=64,64`` one; ``env_options`` (JSON) is always one value. The trials are the
grid's product, each repeated ``--samples`` times with fresh random draws (Tune's ``num_samples``; grid
values are enumerated, random ones sampled: Tune's basic variant generator). ``--search NAME`` uses another
of Tune's search algorithms by the name Tune gives it (``optuna``, ``hyperopt``, ...; their packages are not
installed by the ``sweep`` extra); grid values then become choices. ``--scheduler NAME`` picks one of Tune's
trial schedulers by its Tune name (``asha`` is short for ``async_hyperband``; ``median_stopping_rule``,
``hyperband``, ...), with ``--scheduler-opt key=value`` for its arguments. ASHA's time unit is ``env_steps``
and its ``max_t`` the largest ``total_env_steps`` of the sweep unless given.

**Reporting.** Each trial runs the training loop in a thread of the trial's process and reads its
``metrics.csv`` as the loop appends to it (every ``log_every`` updates): every new update is reported to
Tune (``tune.report``) with ``update``, ``env_steps``, the seed-mean ``return_mean`` and ``win_rate``, so
schedulers like ASHA can stop weak trials early (the run folder of a stopped trial keeps what it logged and
its checkpoints). The run loop needs no hook for this. The metric Tune optimises is ``--metric``
(``return`` = ``return_mean``, or ``win_rate``), mode ``--mode`` (``max``).

**Where it runs.** Without ``--address`` the sweep starts a Ray head in this process, on this machine only:
it binds the loopback address (127.0.0.1) and starts no dashboard unless ``--dashboard``; ``--num-cpus``
caps it. With ``--address`` (``auto``, ``HOST:PORT`` or ``ray://HOST:10001``) it joins that existing
cluster instead; on several machines ``--out`` must be a folder every node sees (a shared filesystem), since
each trial writes its run folder where it runs and Tune keeps its experiment there too. ``--cpus-per-trial``
(default 1) sets how many trials run at once.

**Resume.** The driver can crash or be stopped (Ctrl-C) at any time: ``trustmarl sweep --resume --out
FOLDER`` restores Tune's experiment (``Tuner.restore``) and finishes it: finished trials are kept,
unfinished and errored ones run again, and a trial whose run folder has a checkpoint resumes from it
(:func:`trustmarl.runtime.train` with ``resume=True``) instead of starting over.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Axis", "SweepError", "parse_spec", "param_space", "run_trial", "sweep", "start_ray",
           "SWEEP_FILE", "TUNE_DIR"]

SWEEP_FILE = "sweep.json"
TUNE_DIR = "tune"
RANDOM_KINDS = ("choice", "uniform", "loguniform", "randint")
KINDS = ("grid", *RANDOM_KINDS)
SCHEDULER_ALIASES = {"asha": "async_hyperband", "median": "median_stopping_rule"}
SEARCH_ALIASES = {"grid": "variant_generator", "basic": "variant_generator"}
# Keys a trial always sets itself: the trial's run folder replaces them.
RESERVED = ("out_dir", "run_name")


class SweepError(ValueError):
    """A bad sweep word or option; the message is one line."""


@dataclass(frozen=True)
class Axis:
    """One config key of the sweep: a fixed value, a grid, or a random distribution."""

    key: str
    kind: str  # "fixed", "grid", "choice", "uniform", "loguniform", "randint"
    values: tuple

    @property
    def varies(self) -> bool:
        return self.kind != "fixed" and not (self.kind in ("grid", "choice") and len(self.values) == 1)


def _field(key: str):
    from trustmarl.config import Config, ConfigError
    try:
        return Config._field(key)
    except ConfigError:
        import difflib
        from dataclasses import fields
        near = difflib.get_close_matches(key, [f.name for f in fields(Config)], n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise SweepError(f"unknown config key {key!r}{hint}; `trustmarl train --keys` lists the keys") from None


def _split_values(key: str, text: str) -> list[str]:
    """Alternatives of one key: split on ',' (on '/' for keys whose values hold commas)."""
    from trustmarl.config import _base_type
    f = _field(key)
    if key == "env_options":
        return [text]
    sep = "/" if _base_type(f) is tuple else ","
    parts = [p.strip() for p in text.split(sep)]
    if any(not p for p in parts):
        raise SweepError(f"{key}={text!r} has an empty value")
    return parts


def _parse_value(key: str, text: str):
    from trustmarl.config import ConfigError, _parse
    try:
        return _parse(_field(key), text)
    except ConfigError as err:
        raise SweepError(str(err)) from None


def _number(key: str, kind: str, text: str, integer: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SweepError(f"{key}={kind}:... bound {text!r} is not a number") from None
    if integer and not value.is_integer():
        raise SweepError(f"{key}={kind}:... bound {text!r} is not an integer")
    return int(value) if integer else value


def parse_spec(words: Sequence[str]) -> dict[str, Axis]:
    """The sweep's axes from CLI words (grammar in the module docstring); SweepError on a bad word."""
    from trustmarl.config import _base_type
    axes: dict[str, Axis] = {}
    for word in words:
        key, sep, text = word.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SweepError(f"argument {word!r} is not key=value")
        if key in RESERVED:
            raise SweepError(f"{key} is set by the sweep (each trial's run folder is under --out)")
        if key in axes:
            raise SweepError(f"{key} is given twice")
        f = _field(key)
        kind, colon, rest = text.partition(":")
        if colon and kind in KINDS:
            text = rest
        else:
            kind = None
        if kind in ("uniform", "loguniform", "randint"):
            bounds = [b.strip() for b in text.split(",")]
            if len(bounds) != 2:
                raise SweepError(f"{key}={kind}:{text} needs two bounds, {kind}:LOW,HIGH")
            t = _base_type(f)
            if kind == "randint" and t is not int:
                raise SweepError(f"{key} is not an integer key; randint: needs one")
            if kind != "randint" and t not in (int, float):
                raise SweepError(f"{key} is not a numeric key; {kind}: needs one")
            lo, hi = (_number(key, kind, b, integer=kind == "randint") for b in bounds)
            if not lo < hi:
                raise SweepError(f"{key}={kind}:{text}: the low bound must be below the high bound")
            if kind == "loguniform" and lo <= 0:
                raise SweepError(f"{key}={kind}:{text}: loguniform needs a positive low bound")
            for b in (lo, hi):  # both ends must be valid values of the key
                _check_value(key, int(b) if t is int else b)
            if t is int and kind != "randint":
                raise SweepError(f"{key} is an integer key; use randint:LOW,HIGH or a grid")
            axes[key] = Axis(key, kind, (lo, hi))
            continue
        values = [_parse_value(key, v) for v in _split_values(key, text)]
        for v in values:
            _check_value(key, v)
        if kind is None:
            kind = "grid" if len(values) > 1 else "fixed"
        axes[key] = Axis(key, kind, tuple(values))
    return axes


def _check_value(key: str, value) -> None:
    from trustmarl.config import ConfigError, _check_field
    try:
        _check_field(_field(key), value)
    except ConfigError as err:
        raise SweepError(str(err)) from None


def validate(axes: dict[str, Axis]) -> None:
    """Build the config of every grid point (random keys at their low bound) so that a bad combination
    (an unknown algorithm, a key the algorithm does not read, ...) stops the sweep before Ray starts.
    Grids of more than 256 points are checked on their first 256."""
    import itertools
    from trustmarl.config import Config, ConfigError
    fixed = {a.key: a.values[0] for a in axes.values() if a.kind == "fixed"}
    lists = [(a.key, a.values if a.kind in ("grid", "choice") else a.values[:1]) for a in axes.values()
             if a.kind != "fixed"]
    for combo in itertools.islice(itertools.product(*[v for _, v in lists]), 256):
        overrides = {**fixed, **dict(zip([k for k, _ in lists], combo))}
        try:
            Config.build(overrides)
        except ConfigError as err:
            point = " ".join(f"{k}={_short(v)}" for k, v in overrides.items() if k not in fixed)
            raise SweepError(f"{err}" + (f" (at {point})" if point else "")) from None


def param_space(axes: dict[str, Axis], basic: bool = True) -> dict:
    """Tune's ``param_space`` of the axes: grids become ``tune.grid_search`` (``tune.choice`` when
    ``basic`` is False: other search algorithms do not enumerate grids), random kinds Tune's samplers."""
    from ray import tune
    space: dict[str, Any] = {}
    for a in axes.values():
        if a.kind == "fixed":
            space[a.key] = a.values[0]
        elif a.kind == "grid":
            space[a.key] = tune.grid_search(list(a.values)) if basic else tune.choice(list(a.values))
        elif a.kind == "choice":
            space[a.key] = tune.choice(list(a.values))
        elif a.kind == "uniform":
            space[a.key] = tune.uniform(*a.values)
        elif a.kind == "loguniform":
            space[a.key] = tune.loguniform(*a.values)
        elif a.kind == "randint":
            space[a.key] = tune.randint(*a.values)
    return space


# --------------------------------------------------------------------------------------------
# one trial
# --------------------------------------------------------------------------------------------


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        return "x".join(_short(v) for v in value)
    return str(value)


def trial_name(trial, vary: Sequence[str] = ()) -> str:
    """Run-folder name of a trial: ``t<index>`` and the values of the swept keys, filesystem-safe,
    at most 120 characters (Tune's ``trial_name_creator`` and ``trial_dirname_creator``)."""
    index = str(trial.trial_id).rsplit("_", 1)[-1]
    parts = [f"t{index}"] + [f"{k}={_short(trial.config.get(k))}" for k in vary if k in trial.config]
    name = re.sub(r"[^A-Za-z0-9=._+-]", "-", "_".join(parts))
    return name[:120]


class MetricsTail:
    """Reads the rows a run loop appends to ``metrics.csv`` and turns each finished update into one
    report: ``update``, ``env_steps`` and the seed means of ``return_mean`` and ``win_rate``.

    Only complete lines are read; an update is finished when the rows of all ``num_seeds`` seeds are in.
    A file that is replaced or shrinks (a resumed run rewrites it without the rows logged after its last
    checkpoint) is read again from the start, without repeating updates already reported. ``stale_inode``:
    the file of a run about to be resumed, not read until the run loop has replaced it."""

    def __init__(self, path: Path, num_seeds: int, stale_inode: int | None = None):
        self.path, self.num_seeds = Path(path), num_seeds
        self.stale_inode = stale_inode
        self.inode: int | None = None
        self.offset = 0
        self.header: list[str] | None = None
        self.pending: dict[int, list[dict]] = {}
        self.last_update = 0

    def poll(self) -> list[dict]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        if st.st_ino == self.stale_inode:
            return []
        if st.st_ino != self.inode or st.st_size < self.offset:
            self.offset, self.header, self.pending = 0, None, {}
        self.inode = st.st_ino
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1
        if not end:
            return []
        self.offset += end
        lines = chunk[:end].decode().splitlines()
        if self.header is None:
            self.header, lines = next(csv.reader(lines[:1])), lines[1:]
        out = []
        for row in csv.DictReader(lines, fieldnames=self.header):
            try:
                update = int(float(row["update"]))
            except (KeyError, TypeError, ValueError):
                continue
            if update <= self.last_update:
                continue
            self.pending.setdefault(update, []).append(row)
        for update in sorted(self.pending):
            rows = self.pending[update]
            if len(rows) < self.num_seeds:
                break
            del self.pending[update]
            self.last_update = update
            out.append(self._report(update, rows))
        return out

    @staticmethod
    def _report(update: int, rows: list[dict]) -> dict:
        def mean(col):
            vals = [_float(r.get(col)) for r in rows]
            vals = [v for v in vals if math.isfinite(v)]
            return sum(vals) / len(vals) if vals else math.nan
        return {"update": update, "env_steps": int(_float(rows[0].get("env_steps"))),
                "return_mean": mean("return_mean"), "win_rate": mean("win_rate")}


def _float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def run_trial(params: dict, sweep_dir: str, poll_s: float = 1.0) -> None:
    """Tune's trainable: train one config into ``<sweep_dir>/<trial name>`` and report every update.

    A run folder that already holds a checkpoint (a trial restarted by ``--resume``) resumes from it."""
    from ray import tune
    from trustmarl import runtime
    from trustmarl.config import Config
    from trustmarl.runtime.checkpoints import latest_checkpoint

    run_dir = Path(sweep_dir) / tune.get_context().get_trial_name()
    config = Config.build(dict(params))
    resume = run_dir.is_dir() and latest_checkpoint(run_dir) is not None
    if not resume and run_dir.is_dir():  # a trial restarted before its first checkpoint: start clean
        for name in ("metrics.csv", "trust_region.csv"):
            (run_dir / name).unlink(missing_ok=True)
    outcome: dict[str, Any] = {}

    def work():
        try:
            outcome["summary"] = runtime.train(config, run_dir=run_dir, resume=resume)
        except BaseException as err:  # noqa: BLE001 - re-raised in the trial's own thread below
            outcome["error"] = err

    metrics_csv = run_dir / "metrics.csv"
    stale = metrics_csv.stat().st_ino if resume and metrics_csv.exists() else None
    tail = MetricsTail(metrics_csv, config.num_seeds, stale_inode=stale)
    worker = threading.Thread(target=work, name="trustmarl-train", daemon=True)
    worker.start()
    last: dict = {}
    while worker.is_alive():
        worker.join(poll_s)
        for report in tail.poll():
            last = report
            tune.report(report)
    for report in tail.poll():
        last = report
        tune.report(report)
    if "error" in outcome:
        raise outcome["error"]
    s = outcome["summary"]
    tune.report({**(last or {"update": 0, "env_steps": s["env_steps"]}),
                 "return_mean": s["final_return"] if not last else last["return_mean"],
                 "win_rate": s["final_win_rate"] if not last else last["win_rate"],
                 "final_return": s["final_return"], "final_win_rate": s["final_win_rate"],
                 "env_steps_per_s": s["env_steps_per_s"], "done": True})


# --------------------------------------------------------------------------------------------
# the sweep
# --------------------------------------------------------------------------------------------


def start_ray(address: str | None = None, num_cpus: int | None = None, dashboard: bool = False) -> str:
    """Connect to the Ray cluster at ``address``, or (None) start a head in this process that binds the
    loopback address and runs no dashboard unless ``dashboard``. Returns the cluster's GCS address.
    A head that cannot start raises RuntimeError naming Ray's reason."""
    if address is None:
        # A single-machine head: Ray then resolves this node's address to 127.0.0.1 (its own switch for
        # single-node machines), so GCS, raylet, object manager and workers listen on loopback only.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    if address is None:
        from ray._private import ray_constants
        ray_constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before the variable was set
    if ray.is_initialized():
        return ray.get_runtime_context().gcs_address
    kwargs: dict[str, Any] = {"log_to_driver": True, "configure_logging": True, "logging_level": "warning"}
    try:
        if address is None:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=dashboard,
                     _node_ip_address="127.0.0.1", **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except Exception as err:  # noqa: BLE001 - one line for the CLI
        where = "a local Ray head" if address is None else f"the Ray cluster at {address}"
        raise RuntimeError(f"could not start {where}: {type(err).__name__}: {err}") from err
    return ray.get_runtime_context().gcs_address


def _make_scheduler(name: str | None, options: dict, axes: dict[str, Axis]):
    if not name or name == "fifo":
        return None
    from ray import tune
    tune_name = SCHEDULER_ALIASES.get(name, name)
    opts = dict(options)
    if tune_name in ("async_hyperband", "asynchyperband", "hyperband"):
        opts.setdefault("time_attr", "env_steps")
        if opts["time_attr"] == "env_steps":
            from trustmarl.config import Config
            budget = axes.get("total_env_steps")
            max_t = max(budget.values) if budget is not None else Config._field("total_env_steps").default
            opts.setdefault("max_t", int(max_t))
            if tune_name != "hyperband":
                opts.setdefault("grace_period", max(1, int(opts["max_t"]) // 16))
    try:
        return tune.create_scheduler(tune_name, **opts)
    except (ValueError, TypeError) as err:
        raise SweepError(f"scheduler {name!r}: {err}") from None


def _make_searcher(name: str | None, options: dict):
    if not name or SEARCH_ALIASES.get(name, name) in ("variant_generator", "random"):
        return None
    from ray import tune
    try:
        return tune.create_searcher(name, **options)
    except (ValueError, TypeError, ImportError, AssertionError) as err:
        raise SweepError(f"search algorithm {name!r}: {err}") from None


def _options(words: Sequence[str], what: str) -> dict:
    """``key=value`` options of a scheduler or searcher; numbers become int/float."""
    out = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise SweepError(f"{what} option {word!r} is not key=value")
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def sweep(words: Sequence[str] = (), out: str | Path | None = None, *, samples: int = 1,
          scheduler: str | None = None, scheduler_opts: Sequence[str] = (), search: str | None = None,
          search_opts: Sequence[str] = (), metric: str = "return", mode: str = "max",
          address: str | None = None, num_cpus: int | None = None, cpus_per_trial: float = 1.0,
          dashboard: bool = False, max_concurrent: int = 0, resume: bool = False, poll_s: float = 1.0,
          verbose: int = 1) -> dict:
    """Run (or, with ``resume``, finish) a sweep; returns ``{"sweep_dir", "trials", "errors", "best"}``.

    ``words`` and the options are those of ``trustmarl sweep`` (module docstring). A resumed sweep takes
    its words and options from the sweep folder's ``sweep.json``; ``address``, ``num_cpus`` and
    ``dashboard`` may differ from the first try."""
    from trustmarl.analysis.tables import metric_column
    if out is None:
        if resume:
            raise SweepError("--resume needs --out, the folder of the sweep to finish")
        out = Path("runs/sweeps") / time.strftime("%Y%m%d-%H%M%S")
    out = Path(out).resolve()
    spec_path = out / SWEEP_FILE
    if resume:
        if not spec_path.is_file():
            raise SweepError(f"{out} holds no sweep to resume (no {SWEEP_FILE})")
        saved = json.loads(spec_path.read_text())
        if words and list(words) != saved["words"]:
            raise SweepError(f"--resume finishes the sweep as it was started; drop the words "
                             f"(it was started with: {' '.join(saved['words'])})")
        words = saved["words"]
        o = saved["options"]
        samples, scheduler, scheduler_opts = o["samples"], o["scheduler"], o["scheduler_opts"]
        search, search_opts, metric, mode = o["search"], o["search_opts"], o["metric"], o["mode"]
        cpus_per_trial, max_concurrent = o["cpus_per_trial"], o["max_concurrent"]
    elif spec_path.is_file():
        raise SweepError(f"{out} already holds a sweep; --resume finishes it, or give another --out")
    if samples < 1:
        raise SweepError(f"--samples={samples} must be >= 1")
    if mode not in ("max", "min"):
        raise SweepError(f"--mode={mode!r} must be max or min")
    if cpus_per_trial <= 0:
        raise SweepError(f"--cpus-per-trial={cpus_per_trial} must be > 0")
    axes = parse_spec(words)
    axes.setdefault("progress", Axis("progress", "fixed", (False,)))  # no progress bars in trial logs
    validate(axes)
    metric = metric_column(metric)
    vary = [a.key for a in axes.values() if a.varies]
    basic = not search or SEARCH_ALIASES.get(search, search) in ("variant_generator", "random")

    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        options = {"samples": samples, "scheduler": scheduler, "scheduler_opts": list(scheduler_opts),
                   "search": search, "search_opts": list(search_opts), "metric": metric, "mode": mode,
                   "cpus_per_trial": cpus_per_trial, "max_concurrent": max_concurrent}
        tmp = out / (SWEEP_FILE + ".tmp")
        tmp.write_text(json.dumps({"words": list(words), "options": options}, indent=2))
        os.replace(tmp, spec_path)

    sched = _make_scheduler(scheduler, _options(scheduler_opts, "scheduler"), axes)
    searcher = _make_searcher(search, _options(search_opts, "search"))
    gcs = start_ray(address, num_cpus, dashboard)
    where = "a local Ray head (loopback only, dashboard " + ("on" if dashboard else "off") + ")" \
        if address is None else "the Ray cluster"
    print(f"sweep: {'resuming' if resume else 'running'} in {out} on {where} at {gcs}", flush=True)
    import functools

    from ray import tune
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, sweep_dir=str(out), poll_s=poll_s), {"cpu": cpus_per_trial})
    tune_path = out / TUNE_DIR
    if resume and tune.Tuner.can_restore(str(tune_path)):
        tuner = tune.Tuner.restore(str(tune_path), trainable, resume_unfinished=True, restart_errored=True)
    else:
        namer = functools.partial(trial_name, vary=tuple(vary))
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(axes, basic),
            tune_config=tune.TuneConfig(metric=metric, mode=mode, num_samples=samples, scheduler=sched,
                                        search_alg=searcher, max_concurrent_trials=max_concurrent or None,
                                        trial_name_creator=namer, trial_dirname_creator=namer),
            run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(out), verbose=verbose,
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
    grid = tuner.fit()
    trials, errors = [], []
    for result in grid:
        name = Path(result.path).name
        entry = {"name": name, "run_dir": str(out / name), "config": {k: result.config.get(k) for k in vary},
                 "metrics": {k: result.metrics.get(k) for k in ("update", "env_steps", "return_mean",
                                                                 "win_rate", "final_return")}
                 if result.metrics else {}}
        if result.error is not None:
            entry["error"] = f"{type(result.error).__name__}: {str(result.error).strip().splitlines()[-1:]}"
            errors.append(entry)
        trials.append(entry)
    best = None
    try:
        b = grid.get_best_result(metric=metric, mode=mode)
        best = {"name": Path(b.path).name, "config": {k: b.config.get(k) for k in vary},
                metric: (b.metrics or {}).get(metric)}
    except (RuntimeError, ValueError, KeyError):
        pass
    return {"sweep_dir": str(out), "vary": vary, "metric": metric, "trials": trials, "errors": errors,
            "best": best}


def shutdown_ray() -> None:
    """Stop the Ray head this process started (no-op when none); connections to a cluster just close."""
    if "ray" in sys.modules:
        import ray
        if ray.is_initialized():
            ray.shutdown()
