"""``trustmarl`` command line.

    trustmarl train [algo=<name>] [env=<name>] [key=value ...]   train (default: MAPPO on MPE simple_spread)
    trustmarl resume RUN_DIR [key=value ...]                     continue an interrupted run (optionally changed)
    trustmarl eval RUN_DIR [--episodes K] [--sampled]            return / win rate from the last checkpoint
    trustmarl render RUN_DIR [--out FILE.gif] [--sampled]        GIF of one episode (MPE, SMAX)
    trustmarl list                                               algorithms, envs, SMAX maps
    trustmarl plot FIGURE RUN_DIR... [--out FILE.png]            trust-region figures (Sun et al.)
    trustmarl reproduce NAME [--budget F] [--seeds N] [--set key=value ...] [--only PATTERN ...]   a paper
                                                                 figure or table, end to end
    trustmarl check-env ENV [--options JSON]                     check a user env against the env contract
    trustmarl sweep key=v1,v2 key=loguniform:a,b ... [--samples N] [--scheduler asha] [--out DIR] [--resume]
                                                                 grid/random search on Ray Tune (sweep extra)
    trustmarl table RUNS... [--metric return] [--window last:10] [--csv FILE]   mean ± std, IQM, bootstrap CIs
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Exit codes (docs/reliability.md): 0 done, 1 check-env found problems (or an unexpected error, with its
# traceback), 2 bad input (one line), 3 stall (runtime.watchdog), 4 non-finite values, 5 a checkpoint could not
# be written, 6 a host-path env worker failed, 130/143 stopped by SIGINT/SIGTERM after a checkpoint.


def _one_line(msg) -> str:
    return " ".join(str(msg).split())


def _fail(msg: str) -> int:
    print(f"trustmarl: error: {_one_line(msg)}", file=sys.stderr)
    return 2


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``trustmarl: error: ...``, exit code 2) instead of usage + error."""

    def error(self, message):
        print(f"trustmarl: error: {_one_line(message)} (`{self.prog} --help` shows the usage)", file=sys.stderr)
        sys.exit(2)


def _words(words: list[str]) -> dict:
    """``key=value`` words -> dict (one-line ConfigError for a word without '=')."""
    from trustmarl.config import ConfigError
    out = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"argument {word!r} is not key=value")
        out[key.strip()] = value
    return out


def cmd_train(args) -> int:
    from trustmarl.config import Config, ConfigError
    if args.help_keys:
        try:
            algo = _algo_word(args.overrides)
            print(f"trustmarl train [key=value ...]; keys{' read by algo=' + algo if algo else ''}:\n"
                  + Config.describe(algo))
        except ConfigError as err:
            return _fail(str(err))
        return 0
    try:
        config = Config.from_args(args.overrides)
        from trustmarl import runtime
        print(f"training {config.algo} on {config.env}"
              + (f" map={config.map}" if config.env == "smax" else "")
              + f" for {config.total_env_steps:,} env steps, {config.num_seeds} seed(s)")
        summary = runtime.train(config)
    except (ConfigError, ValueError) as err:
        return _fail(str(err))
    _print_summary(summary)
    return 0


def _algo_word(words: list[str]) -> str | None:
    """The ``algo=<name>`` among ``--keys`` words (other words are not allowed there)."""
    from trustmarl.config import ConfigError
    algo = None
    for word in words:
        key, sep, value = word.partition("=")
        if key != "algo" or not sep:
            raise ConfigError(f"--keys takes only algo=<name>, not {word!r}")
        algo = value
    return algo


def cmd_resume(args) -> int:
    from trustmarl import runtime
    from trustmarl.config import ConfigError
    try:
        config = runtime.load_config(Path(args.run_dir), _words(args.overrides))
        summary = runtime.train(config, run_dir=Path(args.run_dir), resume=True)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    _print_summary(summary)
    return 0


def _print_summary(s: dict):
    win = "" if s["final_win_rate"] != s["final_win_rate"] else f", win rate {s['final_win_rate']:.2f}"
    print(f"done: {s['env_steps']:,} env steps, final return {s['final_return']:.2f}{win}, "
          f"{s['env_steps_per_s']:,.0f} env-steps/s (compile {s['compile_s']:.1f}s)")
    print(f"run folder: {s['run_dir']}")
    if s.get("learning_curve"):
        print(f"learning curve: {s['learning_curve']}")


def _load_policy(run_dir: Path, seed_index: int = 0, host_envs: int = 1):
    """(driver, actor params of seed ``seed_index``) from a run folder's last checkpoint. A host-path run
    gets a host driver with ``host_envs`` envs stepped in this process."""
    import jax
    from trustmarl.runtime import checkpoints, loop
    config = loop.load_config(run_dir)
    if not 0 <= seed_index < config.num_seeds:
        raise ValueError(f"--seed-index={seed_index} must be in [0, {config.num_seeds - 1}]")
    driver = loop.make_driver(config, **({"num_envs": host_envs, "async_": False} if _is_host(config) else {}))
    try:
        state = checkpoints.restore_checkpoint(run_dir, driver.init())
    except Exception:
        driver.close()
        raise
    params = jax.tree.map(lambda x: x[seed_index], driver.trainer.policy_params(state))
    return driver, params


def _is_host(config) -> bool:
    from trustmarl.envs import is_host_env
    return is_host_env(config.env)


def cmd_eval(args) -> int:
    import jax
    from trustmarl import evaluation
    if args.episodes < 1:
        return _fail(f"--episodes={args.episodes} must be >= 1")
    if args.seed < 0:
        return _fail(f"--seed={args.seed} must be >= 0")
    try:
        host = _is_host(_run_config(args.run_dir))
        driver, params = _load_policy(Path(args.run_dir), args.seed_index,
                                      host_envs=min(args.episodes, 8))
        try:
            key = jax.random.PRNGKey(args.seed)
            if host:
                out = evaluation.evaluate_host(driver.trainer, params, driver.venv, key, args.episodes,
                                               greedy=not args.sampled)
            else:
                out = evaluation.evaluate(driver.trainer, params, key, args.episodes, greedy=not args.sampled)
        finally:
            driver.close()
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    print(json.dumps(out, indent=2))
    return 0


def _run_config(run_dir):
    from trustmarl.runtime import loop
    return loop.load_config(Path(run_dir))


def cmd_render(args) -> int:
    import jax
    from trustmarl import evaluation
    try:
        config = _run_config(args.run_dir)
        driver, params = _load_policy(Path(args.run_dir), args.seed_index)
        out = Path(args.out) if args.out else Path(args.run_dir) / "episode.gif"
        key = jax.random.PRNGKey(args.seed)
        try:
            if _is_host(config):
                from trustmarl.runtime.loop import host_env_fn
                path = evaluation.render_host_gif(driver.trainer, params, host_env_fn(config), key, out,
                                                  greedy=not args.sampled)
            else:
                path = evaluation.render_gif(driver.trainer, params, key, out, greedy=not args.sampled)
        finally:
            driver.close()
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    print(f"wrote {path}")
    return 0


def cmd_list(args) -> int:
    from trustmarl.algos import ALGORITHMS
    from trustmarl.envs import ENVS, list_smax_maps
    print("algorithms:")
    for a in ALGORITHMS.values():
        print(f"  {a.name:<8} {a.summary}  [{a.reference}]")
    print("environments:")
    for name, e in ENVS.items():
        opts = f" (options: {', '.join(e.options)})" if e.options else ""
        print(f"  {name:<24} {e.doc}{opts}")
    print("SMAX maps (allies vs enemies):")
    for name, (allies, enemies) in list_smax_maps().items():
        print(f"  {name:<22} {allies:>3} agents vs {enemies:>3}")
    return 0


def cmd_plot(args) -> int:
    from trustmarl.analysis import figures as plotting
    figures = getattr(plotting, "FIGURES", {})
    if args.figure not in figures:
        return _fail(f"figure {args.figure!r} is unknown; allowed: {', '.join(figures)}")
    try:
        for run in args.runs:
            _check_run_folder(Path(run))
        options = _plot_options(figures[args.figure], args.set)
        out = figures[args.figure](args.runs, args.out or f"{args.figure}.png", **options)
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    except (KeyError, IndexError, TypeError) as err:  # a run folder whose logs are not what training writes
        return _fail(f"figure {args.figure!r} cannot be drawn from {', '.join(args.runs)}: {type(err).__name__}: "
                     f"{err}; allowed: run folders written by `trustmarl train` (metrics.csv, trust_region.csv)")
    print(f"wrote {out}")
    return 0


def _check_run_folder(run: Path):
    """A plot input must be a folder with a readable metrics.csv (or a folder of such folders)."""
    if not run.is_dir():
        raise FileNotFoundError(f"run folder {str(run)!r} does not exist; allowed: folders written by `trustmarl train`")
    csvs = [run / "metrics.csv"] if (run / "metrics.csv").exists() else list(run.glob("*/metrics.csv"))
    if not csvs:
        raise FileNotFoundError(f"{run} holds no metrics.csv; allowed: run folders written by `trustmarl train`")
    for path in csvs:
        try:
            with open(path, encoding="utf-8") as fh:
                header = fh.readline()
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not a CSV text file") from None
        if "update" not in header.split(","):
            raise ValueError(f"{path} is not a trustmarl metrics.csv (no 'update' column in its header)")


def _plot_options(func, words: list[str]) -> dict:
    """``--set key=value`` for a figure's keyword options; a comma makes a tuple (``rows=win_rate,return_mean``),
    digits an int (``update=3``)."""
    import inspect
    params = {n: p for n, p in inspect.signature(func).parameters.items() if p.kind is p.KEYWORD_ONLY}
    out = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ValueError(f"--set {word!r} is not key=value")
        if key not in params:
            raise ValueError(f"plot option {key!r} is unknown for this figure; allowed: {', '.join(params) or 'none'}")
        listed = "," in value or str(params[key].annotation).startswith("Sequence")  # group_by=clip: one key
        out[key] = tuple(v for v in value.split(",") if v) if listed else int(value) if value.isdigit() else value
    return out


def cmd_reproduce(args) -> int:
    from trustmarl.analysis import reproduce
    from trustmarl.config import ConfigError
    if args.name == "list":
        for e in reproduce.EXPERIMENTS.values():
            print(f"  {e.name:<14} {e.doc}")
        return 0
    if not (args.budget > 0 and args.budget == args.budget and args.budget != float("inf")):
        return _fail(f"--budget={args.budget} must be a fraction of the paper's env steps > 0 (e.g. 0.01)")
    if args.seeds < 1:
        return _fail(f"--seeds={args.seeds} must be >= 1")
    try:
        overrides = _parse_sets(args.set)
        png = reproduce.reproduce(args.name, args.out, args.budget, args.seeds, overrides, only=args.only)
    except (ConfigError, ValueError, FileNotFoundError) as err:
        return _fail(str(err))
    print(f"wrote {png}")
    return 0


def _parse_sets(words: list[str]) -> dict:
    from trustmarl.config import Config, ConfigError, _parse
    out = {}
    for word in words:
        if "=" not in word:
            raise ConfigError(f"--set {word!r} is not key=value")
        key, value = word.split("=", 1)
        out[key] = _parse(Config._field(key), value)
    return out


def cmd_sweep(args) -> int:
    try:
        from trustmarl import sweep
    except ImportError as err:  # pragma: no cover - trustmarl.sweep imports only the standard library
        return _fail(str(err))
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        return _fail("trustmarl sweep needs Ray Tune: pip install -e '.[sweep]'")
    try:
        result = sweep.sweep(args.words, args.out, samples=args.samples, scheduler=args.scheduler,
                             scheduler_opts=args.scheduler_opt, search=args.search, search_opts=args.search_opt,
                             metric=args.metric, mode=args.mode, address=args.address, num_cpus=args.num_cpus,
                             cpus_per_trial=args.cpus_per_trial, dashboard=args.dashboard,
                             max_concurrent=args.max_concurrent, resume=args.resume)
    except (sweep.SweepError, RuntimeError) as err:
        return _fail(str(err))
    finally:
        sweep.shutdown_ray()
    n, bad = len(result["trials"]), len(result["errors"])
    print(f"sweep: {n} trial(s), {n - bad} finished, {bad} failed; folder {result['sweep_dir']}")
    for e in result["errors"]:
        print(f"  failed: {e['name']}: {e['error']}")
    if result["best"]:
        b = result["best"]
        print(f"best trial by {result['metric']}: {b['name']} ({b.get(result['metric'])})")
    if n > bad:
        from trustmarl.analysis import tables
        try:
            table = tables.make_table([result["sweep_dir"]], result["metric"], args.window,
                                      by=result["vary"] or None)
            print()
            print(table.markdown())
        except ValueError as err:
            print(f"no summary table: {err}")
    return 1 if bad else 0


def cmd_table(args) -> int:
    from trustmarl.analysis import tables
    try:
        table = tables.make_table(args.runs, args.metric, args.window,
                                  by=[k for k in args.by.split(",") if k] if args.by else None,
                                  columns=args.columns, digits=args.digits, reps=args.reps, conf=args.conf,
                                  seed=args.seed, higher_is_better=args.mode == "max")
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    print(table.markdown(), end="")
    if args.csv:
        out = Path(args.csv)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table.csv())
        print(f"wrote {out}")
    return 0


def cmd_check_env(args) -> int:
    from trustmarl.envs.checker import check_env
    options = {}
    if args.options:
        try:
            options = json.loads(args.options)
        except json.JSONDecodeError as err:
            return _fail(f"--options={args.options!r} is not JSON: {err}")
        if not isinstance(options, dict):
            return _fail(f"--options={args.options!r} must be a JSON object of the env's options")
    try:
        problems = check_env(args.env, options, seed=args.seed)
    except ValueError as err:  # an unknown name or factory path
        return _fail(str(err))
    for prob in problems:
        print(f"  {prob}")
    errors = sum(p.level == "error" for p in problems)
    warnings = len(problems) - errors
    if errors:
        print(f"{args.env}: {errors} problem(s), {warnings} warning(s): it does not fit the env contract yet")
        return 1
    print(f"{args.env}: fits the env contract" + (f" ({warnings} warning(s))" if warnings else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trustmarl", description="Cooperative MARL with trust regions, in JAX.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (key=value overrides; --keys lists them)")
    t.add_argument("overrides", nargs="*", help="key=value")
    t.add_argument("--keys", dest="help_keys", action="store_true",
                   help="list the config keys (of one algorithm with algo=<name>)")
    t.set_defaults(func=cmd_train)
    r = sub.add_parser("resume", help="resume an interrupted run from its last checkpoint")
    r.add_argument("run_dir")
    r.add_argument("overrides", nargs="*", help="key=value changes (e.g. lr=1e-4 after a non-finite stop)")
    r.set_defaults(func=cmd_resume)
    ce = sub.add_parser("check-env", help="check an env (name or package.module:factory) against the env contract")
    ce.add_argument("env")
    ce.add_argument("--options", default="", help="the env's options as a JSON object")
    ce.add_argument("--seed", type=int, default=0)
    ce.set_defaults(func=cmd_check_env)
    for name, func, extra in (("eval", cmd_eval, True), ("render", cmd_render, False)):
        e = sub.add_parser(name, help=f"{name} a trained policy")
        e.add_argument("run_dir")
        e.add_argument("--sampled", action="store_true", help="sample actions instead of greedy")
        e.add_argument("--seed", type=int, default=0)
        e.add_argument("--seed-index", type=int, default=0, help="which of the run's seeds")
        if extra:
            e.add_argument("--episodes", type=int, default=32)
        else:
            e.add_argument("--out", default=None)
        e.set_defaults(func=func)
    sub.add_parser("list", help="algorithms, environments, SMAX maps").set_defaults(func=cmd_list)
    pl = sub.add_parser("plot", help="trust-region figures from run folders")
    pl.add_argument("figure")
    pl.add_argument("runs", nargs="+")
    pl.add_argument("--out", default=None)
    pl.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="figure options, e.g. source=trust_region, rows=win_rate, group_by=clip,ratio")
    pl.set_defaults(func=cmd_plot)
    rp = sub.add_parser("reproduce", help="run a paper experiment and draw its figure ('list' lists them)")
    rp.add_argument("name")
    rp.add_argument("--budget", type=float, default=0.01, help="fraction of the paper's env steps")
    rp.add_argument("--seeds", type=int, default=1)
    rp.add_argument("--out", default="runs/reproduce")
    rp.add_argument("--set", nargs="*", default=[], help="config overrides for every run, key=value")
    rp.add_argument("--only", nargs="*", default=None, metavar="PATTERN",
                    help="run only the runs whose name matches one of these shell patterns (e.g. '*_spread2')")
    rp.set_defaults(func=cmd_reproduce)
    sw = sub.add_parser("sweep", help="grid/random search over config values x seeds on Ray Tune",
                        description="Words: key=v (fixed), key=v1,v2 or key=grid:v1,v2 (grid), key=choice:v1,v2, "
                        "key=uniform:a,b, key=loguniform:a,b, key=randint:a,b (random; --samples draws). Keys "
                        "whose values hold commas (hidden) separate alternatives with '/'. Every trial is a run "
                        "folder under --out; seeds of one config are vmapped in one trial (num_seeds=N).")
    sw.add_argument("words", nargs="*", help="key=SPEC")
    sw.add_argument("--samples", type=int, default=1, help="repeats of the grid, each with fresh random draws")
    sw.add_argument("--scheduler", default=None, help="Tune scheduler by name: asha (async_hyperband), "
                    "median_stopping_rule, hyperband, ...; default none (FIFO)")
    sw.add_argument("--scheduler-opt", nargs="*", default=[], metavar="KEY=VALUE", help="scheduler arguments")
    sw.add_argument("--search", default=None, help="Tune search algorithm by name (default: grid values "
                    "enumerated, random ones sampled; optuna, hyperopt, ... need their own packages)")
    sw.add_argument("--search-opt", nargs="*", default=[], metavar="KEY=VALUE", help="search algorithm arguments")
    sw.add_argument("--metric", default="return", help="metric Tune optimises: return (return_mean) or win_rate")
    sw.add_argument("--mode", default="max", choices=("max", "min"))
    sw.add_argument("--window", default="last:10", help="updates per seed in the summary table (last:K, all)")
    sw.add_argument("--address", default=None, help="an existing Ray cluster (auto, HOST:PORT, ray://...); "
                    "default: start a head on this machine bound to 127.0.0.1")
    sw.add_argument("--num-cpus", type=int, default=None, help="CPUs of a head the sweep starts (default all)")
    sw.add_argument("--cpus-per-trial", type=float, default=1.0)
    sw.add_argument("--max-concurrent", type=int, default=0, help="trials at once (0: as resources allow)")
    sw.add_argument("--dashboard", action="store_true", help="start Ray's dashboard with a head the sweep starts")
    sw.add_argument("--out", default=None, help="sweep folder (default runs/sweeps/<time>)")
    sw.add_argument("--resume", action="store_true", help="finish the sweep in --out after a crash or Ctrl-C")
    sw.set_defaults(func=cmd_sweep)
    tb = sub.add_parser("table", help="mean ± std, IQM and bootstrap intervals over seeds per config",
                        description="One row per configuration (runs grouped by every config key that differs "
                        "except the seed, or --by); each seed's score is the mean of the metric over its last K "
                        "updates (--window last:K). Markdown on stdout, --csv FILE for a CSV.")
    tb.add_argument("runs", nargs="+", help="run folders, or folders searched for them (a sweep folder)")
    tb.add_argument("--metric", default="return", help="return (return_mean), win (win_rate), or a metrics.csv column")
    tb.add_argument("--window", default="last:10", help="last:K updates per seed, tail:F (the last fraction F "
                    "of a seed's updates), final (last:1) or all")
    tb.add_argument("--by", default=None, help="comma-separated config keys to group by (default: all that differ)")
    tb.add_argument("--columns", default=None, help="a config key whose values become columns (e.g. task, env)")
    tb.add_argument("--csv", default=None, help="also write the table as CSV to this file")
    tb.add_argument("--digits", type=int, default=None, help="decimals (default: two significant digits)")
    tb.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    tb.add_argument("--conf", type=float, default=0.95, help="confidence level of the bootstrap intervals")
    tb.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    tb.add_argument("--mode", default="max", choices=("max", "min"), help="which cell of a column is best (bold)")
    tb.set_defaults(func=cmd_table)
    return p


def _exit_code(err: BaseException) -> int | None:
    """The exit code of an error the user can act on (one line, no traceback); None: a bug, re-raised."""
    code = getattr(err, "exit_code", None)
    if isinstance(code, int):
        return code
    if isinstance(err, (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        return 2
    if isinstance(err, OSError):
        return 5
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("trustmarl: aborted (interrupted again while stopping; the last checkpoint is intact)", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - known failures as one line; anything else keeps its traceback
        code = _exit_code(err)
        if code is None:
            raise
        from trustmarl.runtime.errors import RunInterrupted
        kind = "" if isinstance(err, RunInterrupted) else "error: "
        print(f"trustmarl: {kind}{_one_line(err)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
