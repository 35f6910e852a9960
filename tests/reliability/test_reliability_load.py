"""Load: a long run of a tiny config keeps its memory and its time per update flat (docs/reliability.md
reports the figures; ``python tests/reliability/test_reliability_load.py`` prints them)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import tiny  # noqa: E402
from trustmarl.runtime.loop import make_driver, train  # noqa: E402

UPDATES = 2000


class Meter:
    """Wraps a driver: the wall time of every chunk's whole loop iteration (run, logs, checkpoint) and the
    resident set size when each chunk starts."""

    def __init__(self, driver):
        self.driver, self.trainer, self.num_seeds = driver, driver.trainer, driver.num_seeds
        self.starts, self.sizes, self.rss = [], [], []
        self._proc = psutil.Process()

    def init(self):
        return self.driver.init()

    def compile(self, state, n):
        return self.driver.compile(state, n)

    def run(self, state, n):
        self.starts.append(time.perf_counter())
        self.sizes.append(n)
        self.rss.append(self._proc.memory_info().rss)
        return self.driver.run(state, n)

    def close(self):
        self.driver.close()


def long_run(run_dir: Path, updates: int = UPDATES) -> dict:
    cfg = tiny(algo="ippo", env="fast_envs:make_fast", hidden=(8,), update_epochs=1, num_minibatches=1,
               total_env_steps=32 * updates, log_every=10, checkpoint_every=100)
    meter = Meter(make_driver(cfg))
    t0 = time.perf_counter()
    train(cfg, run_dir, driver=meter, plot=False)
    end = time.perf_counter()
    starts = np.asarray(meter.starts + [end])
    per_update = np.diff(starts) / np.asarray(meter.sizes)  # s per update, the whole loop iteration
    chunks = len(meter.sizes)
    k = max(2, chunks // 10)
    rss = np.asarray(meter.rss) / 2**20
    return {"updates": updates, "chunks": chunks, "checkpoints": updates // 100, "wall_s": round(end - t0, 1),
            "ms_per_update_first": round(1e3 * float(np.median(per_update[1: k + 1])), 2),  # after compiling
            "ms_per_update_last": round(1e3 * float(np.median(per_update[-k:])), 2),
            "rss_mib_after_first_chunk": round(float(rss[1]), 1), "rss_mib_start": round(float(rss[k]), 1),
            "rss_mib_end": round(float(rss[-1]), 1), "rss_mib_max_after_start": round(float(rss[k:].max()), 1),
            "ms_per_update_by_tenth": [round(1e3 * float(np.median(t)), 2) for t in np.array_split(per_update[1:], 10)],
            "rss_mib_by_tenth": [round(float(r[-1]), 1) for r in np.array_split(rss, 10)]}


def test_long_run_keeps_memory_and_time_per_update_flat(tmp_path):
    fig = long_run(tmp_path / "long")
    print("load figures:", json.dumps(fig))
    assert fig["chunks"] == UPDATES // 10
    assert fig["rss_mib_max_after_start"] - fig["rss_mib_start"] < 40, fig  # no leak per chunk, checkpoint or row
    assert fig["ms_per_update_last"] < 2.0 * fig["ms_per_update_first"] + 1.0, fig
    rows = (tmp_path / "long" / "metrics.csv").read_text().splitlines()
    assert len(rows) == UPDATES + 1


if __name__ == "__main__":
    import tempfile
    print(json.dumps(long_run(Path(tempfile.mkdtemp()) / "long"), indent=1))
