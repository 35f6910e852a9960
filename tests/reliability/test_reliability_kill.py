"""Kill anywhere, resume, and get the uninterrupted run bit for bit; and CLI determinism (docs/reliability.md).

Two chains of ``trustmarl`` processes train the same tiny run (12 updates, 2 seeds, a checkpoint every 2
updates, one update per chunk). Each process of a chain is SIGKILLed at a named point of the run loop
(``TRUSTMARL_TEST_KILL_AT``, :mod:`trustmarl.runtime.faults`: inside the metrics.csv write, inside orbax's
checkpoint write before and after the arrays are written, inside the TensorBoard write, while resuming, ...)
or at a random moment, and the next one runs ``trustmarl resume``. At the end every chain's metrics.csv and
trust_region.csv equal, byte for byte, those of an uninterrupted run of the same seed; its TensorBoard events
hold each (tag, step) exactly once with the same values; its final checkpoint holds the same parameters.
Two uninterrupted runs of the same command give byte-identical metrics files (determinism through the CLI).
"""
from __future__ import annotations

import random
import signal
import threading
import time

import numpy as np

from subproc import TINY_ARGS, cli, cli_env, popen, raw_checkpoint, rows
from trustmarl.runtime.logging import read_scalars

# (kill point, pass) per process; "random" kills at a random moment once the process has logged an update.
CHAIN_A = [("chunk", 3), ("csv_row", 2), ("ckpt_tmp", 1), ("tb", 2), ("saved", 1), ("truncate", 1),
           ("logged", 2), ("random", 0), ("summary", 1)]
CHAIN_B = [("ckpt_commit", 2), ("before_save", 1), ("tb_compact", 1), ("config", 1), ("init", 1), ("random", 0)]
SURVIVED: list = []  # (chain, point) of every kill that happened; reported in docs/reliability.md


def _train_args(out, name):
    return ["train", *TINY_ARGS, f"out_dir={out}", f"run_name={name}"]


def _lines(path) -> int:
    try:
        return len(path.read_text().splitlines())
    except OSError:
        return 0


def _random_kill(args, env, run_dir, rng) -> int:
    """Start ``args``; once it has logged a new update, SIGKILL it after a random delay (< 0.5 s)."""
    metrics = run_dir / "metrics.csv"
    proc = popen(args, env)
    deadline = time.time() + 240
    low = None  # fewest lines seen (a resume first truncates the file); a count above it is a new update
    while proc.poll() is None and time.time() < deadline:
        n = _lines(metrics)
        if low is not None and n > low:
            break
        low = n if low is None else min(low, n)
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.5))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return proc.returncode


def _chain(name, plan, out, cache, rng, errors):
    run_dir = out / name
    try:
        for i, (point, n) in enumerate(plan):
            args = _train_args(out, name) if i == 0 else ["resume", str(run_dir)]
            if point == "random":
                code = _random_kill(args, cli_env(cache), run_dir, rng)
                if code == -signal.SIGKILL:
                    SURVIVED.append((name, "random"))
                continue
            proc = cli(args, cli_env(cache, TRUSTMARL_TEST_KILL_AT=f"{point}:{n}"))
            assert proc.returncode == -signal.SIGKILL, (name, point, proc.returncode, proc.stderr[-2000:])
            assert f"trustmarl-test: SIGKILL at {point} #{n}" in proc.stderr, (name, point, proc.stderr[-2000:])
            SURVIVED.append((name, point))
        proc = cli(["resume", str(run_dir)], cli_env(cache))
        assert proc.returncode == 0, (name, proc.stderr[-3000:])
        assert "done: 384 env steps" in proc.stdout, proc.stdout
    except BaseException as err:  # noqa: BLE001 - reported by the test thread
        errors.append(err)


def test_killed_anywhere_resumes_bit_identical_and_cli_is_deterministic(tmp_path):
    cache = tmp_path / "xla_cache"
    out = tmp_path / "runs"
    # two uninterrupted runs side by side: the reference and the determinism check
    refs = [popen(_train_args(out, name), cli_env(cache)) for name in ("ref", "ref2")]
    for p in refs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    ref = out / "ref"
    for name in ("metrics.csv", "trust_region.csv"):
        assert (ref / name).read_bytes() == (out / "ref2" / name).read_bytes(), f"{name} differs between two runs"
    assert [int(r["update"]) for r in rows(ref / "metrics.csv")] == [u for u in range(1, 13) for _ in range(2)]

    errors: list = []
    threads = [threading.Thread(target=_chain, args=(name, plan, out, cache, random.Random(seed), errors))
               for seed, (name, plan) in enumerate((("a", CHAIN_A), ("b", CHAIN_B)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    print(f"kills survived: {len(SURVIVED)}: {SURVIVED}")
    named = {p for _, p in SURVIVED if p != "random"}
    assert len(named) == 13 and len(SURVIVED) >= 13, SURVIVED

    ref_tb = read_scalars(ref / "tb")
    ref_ckpt = raw_checkpoint(ref)
    for name in ("a", "b"):
        run = out / name
        for f in ("metrics.csv", "trust_region.csv"):
            assert (run / f).read_bytes() == (ref / f).read_bytes(), f"chain {name}: {f} differs from the reference"
        tb = read_scalars(run / "tb")
        keys = [(tag, step) for tag, step, _ in tb]
        assert len(keys) == len(set(keys)), f"chain {name}: duplicated TensorBoard events"
        assert sorted(tb) == sorted(ref_tb), f"chain {name}: TensorBoard events differ from the reference"
        ck = raw_checkpoint(run)
        assert ck["step"] == ref_ckpt["step"] == 12
        for x, y in zip(ck["leaves"], ref_ckpt["leaves"], strict=True):
            np.testing.assert_array_equal(x, y)
        assert not list((run / "checkpoints").glob("*tmp*")), "a temporary checkpoint folder was left behind"
        assert (run / "summary.json").exists()
