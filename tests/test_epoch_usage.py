"""Per-epoch codebook usage in training: the loop's epoch sums, the train records, results.json."""

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import (
    assert_workdir_contract,
    batches_from,
    load_config,
    toy_config,
    toy_state,
    use_local_idx,
)
from vae_jax.models import FSQ, ResidualVQ, VectorQuantizer
from vae_jax.train import engine, single, train_and_evaluate
from vae_jax.train.feed import make_feed
from vae_jax.train.losses import apply_model
from vae_jax.train.workdir import Workdir, read_metrics


def _epoch_records(workdir, **match) -> dict[int, dict]:
    records = read_metrics(workdir / "metrics.jsonl")
    return {
        r["step"]: r
        for r in records
        if r["split"] == "train" and "epoch_perplexity" in r and all(r.get(k) == v for k, v in match.items())
    }


def _tiny(config, idx_dir, tfds_dir, num_steps=7):
    """A small MLP VQ-VAE on 48 generated images: an epoch is 3 steps of 16."""
    config = use_local_idx(config, idx_dir, tfds_dir)
    config.model.encoder, config.model.hidden = "mlp", (32,)
    config.model.vq.update(num_codes=32, code_dim=4, num_latents=4)
    config.data.max_train_examples = 48
    config.train.update(num_steps=num_steps, log_every=100, checkpoint_every=100)
    config.eval.update(num_examples=64, iwae_k=0)
    return config


def _numpy_health(indices: np.ndarray, num_codes: int) -> tuple[float, float]:
    counts = np.bincount(indices.ravel(), minlength=num_codes)
    p = counts[counts > 0] / counts.sum()
    return np.mean(counts > 0), np.exp(-np.sum(p * np.log(p)))


@pytest.mark.slow
def test_epoch_usage_is_that_of_the_epochs_concatenated_codes(tmp_path, idx_dir, tfds_dir, monkeypatch):
    config = _tiny(load_config("vq_vae", "smoke"), idx_dir, tfds_dir)
    codes = {}  # step t -> the code indices of its batch, under the state before the step

    def recording_feed(config, dataset, mesh):
        feed = make_feed(config, dataset, mesh)
        key = jax.random.key(0)  # VQ's eval-mode indices draw nothing
        indices = jax.jit(lambda s, x: apply_model(s, s.params, x, key, train=False)[0].vq.indices)

        def step(state, inputs, rng):
            t = int(jax.device_get(state.step))
            codes[t + 1] = np.asarray(indices(state, jnp.asarray(dataset.batch_at(t))))
            return feed.step(state, inputs, rng)

        return feed._replace(step=step)

    monkeypatch.setattr(single, "make_feed", recording_feed)
    results = train_and_evaluate(config, tmp_path)
    epochs = _epoch_records(tmp_path)
    assert sorted(epochs) == [3, 6]  # the epochs' last steps; step 7 starts an epoch it does not end
    for end in (3, 6):
        usage, perplexity = _numpy_health(np.concatenate([codes[t] for t in range(end - 2, end + 1)]), 32)
        assert epochs[end]["epoch_codebook_usage"] == pytest.approx(usage, rel=1e-6)
        assert epochs[end]["epoch_perplexity"] == pytest.approx(perplexity, rel=1e-6)
        assert np.isfinite(epochs[end]["loss"])  # the step's own train record, with the epoch's fields
    assert results["epoch_perplexity"] == epochs[6]["epoch_perplexity"]  # the last whole epoch's
    assert results["epoch_codebook_usage"] == epochs[6]["epoch_codebook_usage"]
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["epoch_perplexity"] == results["epoch_perplexity"]


@pytest.mark.slow
def test_rvq_run_writes_per_level_epoch_fields(tmp_path, idx_dir, tfds_dir):
    config = _tiny(load_config("rvq_vae", "smoke"), idx_dir, tfds_dir, num_steps=3)
    config.model.vq.num_levels = 3
    results = train_and_evaluate(config, tmp_path)
    record = _epoch_records(tmp_path)[3]
    for source in (record, results):
        usage = [source[f"epoch_codebook_usage_level{n}"] for n in range(3)]
        perplexity = [source[f"epoch_perplexity_level{n}"] for n in range(3)]
        assert all(0 < u <= 1 for u in usage) and all(1 <= p <= 32 for p in perplexity)
        assert source["epoch_codebook_usage"] == pytest.approx(np.mean(usage))
        assert source["epoch_perplexity"] == pytest.approx(np.mean(perplexity))
    assert "epoch_perplexity_level3" not in record


@pytest.mark.slow
def test_vq_vae_smoke_run_writes_epoch_records(tmp_path, idx_dir, tfds_dir):
    config = use_local_idx(load_config("vq_vae", "smoke"), idx_dir, tfds_dir)
    config.data.max_train_examples = 64  # 4 steps of 16 per epoch: 3 epochs in the 12 smoke steps
    results = train_and_evaluate(config, tmp_path)
    assert sorted(_epoch_records(tmp_path)) == [4, 8, 12]
    assert_workdir_contract(tmp_path)  # epoch records are train records like the others
    assert 0 < results["epoch_codebook_usage"] <= 1 and results["epoch_perplexity"] >= 1


@pytest.mark.slow
def test_sweep_members_get_their_own_epoch_records(tmp_path, idx_dir, tfds_dir):
    config = _tiny(load_config("vq_vae", "smoke"), idx_dir, tfds_dir, num_steps=3)
    config.sweep.spec = "seed=0,1"
    rows = train_and_evaluate(config, tmp_path)["members"]
    for member in (0, 1):
        record = _epoch_records(tmp_path, member=member)[3]
        assert rows[member]["epoch_perplexity"] == record["epoch_perplexity"]
    assert rows[0]["epoch_perplexity"] != rows[1]["epoch_perplexity"]  # each member's own codes


def _counting_step(state, batch):
    """A toy step whose code histogram [2] is (batch, 1): epoch sums are checkable by hand."""
    new = state.replace(step=state.step + 1)
    counts = jnp.stack([batch, 1.0]).astype(jnp.int32)
    return new, {"loss": batch, "finite": jnp.ones(()), "code_counts": counts}


def _epoch_loop(tmp_path, start: int, num_steps: int = 7):
    config = toy_config(num_steps=num_steps, log_every=100)
    config.train.batch_size = 10
    dataset = types.SimpleNamespace(num_train_examples=35)  # 3 steps per epoch (the last 5 dropped)
    run = engine.Run(config, Workdir(tmp_path, tensorboard=False), dataset, None, None)
    logged = {}
    hooks = engine.Hooks(log=lambda t, m: logged.update({t: m}), epoch_sums=("code_counts",))
    begin = toy_state().replace(step=jnp.asarray(start, jnp.int32))
    engine.train_loop(run, begin, _counting_step, batches_from(np.arange(1, 8)), hooks)
    run.writer.close()
    return logged


def test_loop_sums_each_whole_epoch_and_skips_one_entered_midway(tmp_path):
    logged = _epoch_loop(tmp_path / "a", start=0)
    assert sorted(logged) == [3, 6, 7]  # the epochs' last steps are logged, and the last step
    np.testing.assert_array_equal(logged[3]["epoch_code_counts"], [1 + 2 + 3, 3])
    np.testing.assert_array_equal(logged[6]["epoch_code_counts"], [4 + 5 + 6, 3])
    assert "epoch_code_counts" not in logged[7] and "code_counts" not in logged[7]
    resumed = _epoch_loop(tmp_path / "b", start=1)  # epoch 1 (steps 1-3) seen from step 2 only
    assert sorted(resumed) == [6, 7] and "epoch_code_counts" not in resumed.get(3, {})
    np.testing.assert_array_equal(resumed[6]["epoch_code_counts"], [4 + 5 + 6, 3])


@pytest.mark.parametrize(
    "quantizer,size,levels",
    [
        (VectorQuantizer(16, 3), 16, None),
        (FSQ((4, 3, 2)), 24, None),
        (ResidualVQ(VectorQuantizer(16, 3), 2), 16, 2),
    ],
    ids=["vq", "fsq", "rvq"],
)
def test_quantizers_count_their_codes(quantizer, size, levels):
    """The histogram the train step reports: the batch's codes per index (per level for RVQ)."""
    z = jax.random.normal(jax.random.key(0), (8, 5, 3))
    out = quantizer.apply(quantizer.init({"params": jax.random.key(1)}, z), z)
    indices = np.asarray(out.indices).reshape(-1, levels or 1)
    expected = np.stack([np.bincount(indices[:, n], minlength=size) for n in range(levels or 1)])
    np.testing.assert_array_equal(np.asarray(out.counts).reshape(-1, size), expected)
    assert out.counts.shape == ((levels, size) if levels else (size,))
