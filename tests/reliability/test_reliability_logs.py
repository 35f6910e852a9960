"""The pieces that make resume after a kill exact, on hand-made damaged files: CSV rows cut short, event files
with a torn last record, a compaction interrupted half-way (trustmarl.runtime.logging)."""
from __future__ import annotations

import math

from trustmarl.runtime import logging as runlog
from trustmarl.runtime.logging import EventWriter, compact_tb, read_records, read_scalars


def test_truncate_csv_drops_rows_after_the_checkpoint_and_rows_cut_short(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_bytes(b"seed,update,return_mean\r\n0,1,0.5\r\n0,2,0.25\r\n0,3,1.5\r\n0,1")  # killed inside a row
    kept = runlog._truncate_csv(path, 2)
    assert path.read_bytes() == b"seed,update,return_mean\r\n0,1,0.5\r\n0,2,0.25\r\n"
    assert [r["update"] for r in kept] == ["1", "2"]
    ret, win = runlog._last_means(kept)
    assert ret == 0.25 and math.isnan(win)
    path.write_bytes(b"seed,update,return_mean\r\n0,1,0.5\r\n0,2\r\n")  # a complete line with too few fields
    runlog._truncate_csv(path, 5)
    assert path.read_bytes() == b"seed,update,return_mean\r\n0,1,0.5\r\n"
    path.write_text("seed,upd")  # killed while writing the header
    assert runlog._truncate_csv(path, 5) == [] and not path.exists()
    assert not (tmp_path / "metrics.csv.tmp").exists()


def test_event_files_survive_a_torn_record_and_an_interrupted_compaction(tmp_path):
    tb = tmp_path / "tb"
    w = EventWriter(tb, suffix=".a")
    for step in (32, 64, 96):
        w.add_scalar("return_mean", step / 32, step)
        w.add_scalar("value_loss", 0.5, step)
    w.close()
    data = w.path.read_bytes()
    w.path.write_bytes(data[:-7])  # a kill tore the last record
    assert len(read_records(w.path)) == 1 + 5  # the file-version event and five whole scalars
    assert ("value_loss", 96, 0.5) not in read_scalars(tb)
    compact_tb(tb, max_step=64)  # resume from update 2 (32 env steps per update)
    assert sorted(read_scalars(tb)) == [("return_mean", 32, 1.0), ("return_mean", 64, 2.0),
                                        ("value_loss", 32, 0.5), ("value_loss", 64, 0.5)]
    assert [f.name for f in tb.iterdir()] == [runlog.COMPACT_NAME]
    # a kill after the compacted file was written but before the old files were removed: both hold the events
    w2 = EventWriter(tb, suffix=".b")
    w2.add_scalar("return_mean", 3.0, 96)
    w2.close()
    (tb / "events.out.tfevents.1700000000.host.old").write_bytes((tb / runlog.COMPACT_NAME).read_bytes())
    compact_tb(tb, max_step=96)
    keys = [(t, s) for t, s, _ in read_scalars(tb)]
    assert len(keys) == len(set(keys)) == 5
