"""benchmarks.loop_rate runs the real training loop (records, checkpoints) interleaved with its
step's pipeline blocks, and accounts every step of both."""

import json

import pytest

from benchmarks import loop_rate
from tests.helpers import ROOT


@pytest.mark.slow
def test_loop_rate_interleaves_the_real_loop_with_pipeline_blocks(tmp_path):
    config = loop_rate.load_config(str(ROOT / "experiments/beta_vae.py") + ":smoke")
    config.model.encoder, config.model.hidden = "mlp", (16,)
    config.train.update(num_steps=30, log_every=10, checkpoint_every=20)
    config.eval.every = 7  # the benchmark's segment: blocks after steps 7, 14, 21, 28
    row = loop_rate.run_variant(config, "full", tmp_path)
    assert len(row["pipeline_blocks_steps_per_sec"]) == 4
    assert len(row["loop_segments_steps_per_sec"]) == 4  # 5 segments, the first (compiling) left out
    assert row["loop_steps_per_sec"] > 0 and row["pipeline_steps_per_sec"] > 0
    assert row["loop_vs_pipeline"] == pytest.approx(row["loop_steps_per_sec"] / row["pipeline_steps_per_sec"])
    # The loop is the real one: its train records and checkpoints are in the workdir.
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [10, 20, 30]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["20", "30"]
