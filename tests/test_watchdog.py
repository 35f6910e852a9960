"""The stall watchdog: a stalled block ends the process with a one-line explanation, stacks and exit code 3."""
import os
import subprocess
import sys
import textwrap

from trustmarl.runtime.watchdog import STALL_EXIT_CODE


def _run(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)


def test_stalled_block_exits_with_stacks_and_code():
    proc = _run("""
        import time
        from trustmarl.runtime.watchdog import StallWatchdog
        def waiting_forever():
            time.sleep(30)
        with StallWatchdog(0.5, "the test block"):
            waiting_forever()
        print("not reached")
    """)
    assert proc.returncode == STALL_EXIT_CODE
    first = proc.stderr.splitlines()[0]
    assert first.startswith("trustmarl: error: stalled: the test block made no progress for 0.5 s (stall_timeout=0.5)"), first
    assert "waiting_forever" in proc.stderr  # the Python stack of the stalled thread
    assert "not reached" not in proc.stdout


def test_finished_block_disarms_the_watchdog():
    proc = _run("""
        import time
        from trustmarl.runtime.watchdog import StallWatchdog
        with StallWatchdog(0.3, "quick", grace_s=0.2):
            pass
        time.sleep(1.0)  # past both the timer and the faulthandler backstop
        print("survived")
    """)
    assert proc.returncode == 0, proc.stderr
    assert "survived" in proc.stdout


def test_disabled_with_zero():
    proc = _run("""
        import time
        from trustmarl.runtime.watchdog import StallWatchdog
        with StallWatchdog(0, "off"):
            time.sleep(0.5)
        print("ok")
    """)
    assert proc.returncode == 0 and "ok" in proc.stdout


def test_cli_run_that_stalls_stops_with_code_3(tmp_path):
    """A timeout far below the compile time makes the CLI's watchdog fire while compiling the first chunk."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "trustmarl.cli", "train", "algo=ippo", "env=mpe_spread", "num_agents=2",
         "num_envs=4", "rollout_length=8", "total_env_steps=64", "hidden=8", "progress=false",
         "stall_timeout=0.01", f"out_dir={tmp_path}", "run_name=stall"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == STALL_EXIT_CODE, proc.stderr[-2000:]
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("trustmarl: error: stalled"))
    assert "compiling the jitted chunk of updates 1-" in line and "stall_timeout=0.01" in line
