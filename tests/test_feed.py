"""Batches built on the device (vae_jax/data/on_device.py, vae_jax/train/feed.py) are the host
pipeline's, step by step across chunk boundaries and from a resumed step; a sweep trains on them
as on host batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import load_config
from vae_jax import data as data_lib
from vae_jax.data import on_device, pipeline
from vae_jax.models import build_model
from vae_jax.train import sharding
from vae_jax.train.feed import device_input, make_sweep_feed
from vae_jax.train.sweep_spec import member_config, parse_sweep
from vae_jax.train.sweep_step import create_sweep_state

BATCH, SEED = 8, 3


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of 3 steps, so a few steps cross several chunk boundaries."""
    monkeypatch.setattr(on_device, "CHUNK", 3)


def _dataset(name: str) -> data_lib.Dataset:
    """A training dataset as `load_dataset` makes it: host batches and what the device needs."""
    if name == "memory":
        images = np.random.default_rng(0).random((40, 6, 6, 1)).astype(np.float32)
        batch_at = pipeline.array_batch_fn(images, BATCH, SEED)
        return data_lib.Dataset(name, images.shape[1:], batch_at, images[:2], train_images=images)
    source = data_lib.get_ground_truth_data(name)
    batch_at = pipeline.ground_truth_batch_fn(source, BATCH, SEED)
    return data_lib.Dataset(name, tuple(source.observation_shape), batch_at, None, ground_truth=source)


def _config(on_device_data: bool = True):
    config = load_config("vae", "smoke")
    config.train.batch_size, config.seed, config.data.on_device = BATCH, SEED, on_device_data
    return config


@pytest.mark.parametrize("name", ["memory", "dsprites", "color_dsprites", "textured_dsprites"])
def test_device_batches_are_the_host_pipelines(name):
    dataset = _dataset(name)
    device = device_input(_config(), dataset, sharding.make_mesh())
    batch = jax.jit(device.batch)
    for start in (0, 4):  # a run from scratch, and one resumed inside a chunk
        stream = device.inputs(start)
        inputs = [next(stream) for _ in range(7)]
        stream.close()
        for step, step_input in enumerate(inputs, start):
            got, want = np.asarray(batch(jnp.int32(step), step_input)), dataset.batch_at(step)
            assert got.shape == want.shape and got.dtype == want.dtype
            # Textured-dSprites tints in float32 on the device, in float64 on the host (on_device).
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 if name == "textured_dsprites" else 0)
        # One transfer per chunk: a chunk's steps read the same device arrays.
        chunk_of = [(s // on_device.CHUNK) for s in range(start, start + 7)]
        for a, b, ca, cb in zip(inputs, inputs[1:], chunk_of, chunk_of[1:], strict=False):
            assert (a[0] is b[0]) == (ca == cb)


def test_device_draws_are_each_process_rows():
    """In a 2-process run each process draws its rows of a batch (colours after the whole batch's
    factors); the device's global batch is the two processes' host batches, in order."""
    source = data_lib.get_ground_truth_data("color_dsprites")
    batches = on_device._ground_truth(source, BATCH, SEED, nproc=2)
    build = jax.jit(batches.build)
    for step in (0, 5):
        got = np.asarray(build({}, batches.draws_at(step)))
        parts = [pipeline.ground_truth_batch_fn(source, BATCH, SEED, p, 2)(step) for p in (0, 1)]
        np.testing.assert_array_equal(got, np.concatenate(parts))


def test_sources_without_device_observations_keep_the_host_pipeline():
    assert device_input(_config(), _dataset("noisy_dsprites"), sharding.make_mesh()) is None
    assert device_input(_config(False), _dataset("dsprites"), sharding.make_mesh()) is None


@pytest.mark.slow
def test_sweep_on_device_batches_trains_as_on_host_batches():
    """A 2-member vmapped sweep, 4 steps on procedural dSprites: fed on the device or from the host."""
    config = _config()
    config.model.encoder, config.model.hidden, config.model.latent_dim = "mlp", (16,), 2
    config.sweep.vectorize = "vmap"
    configs = [member_config(config, a) for a in parse_sweep("loss.beta=1,4", config)]
    dataset, mesh = _dataset("dsprites"), sharding.make_mesh()
    model = build_model(config, dataset.data_shape)
    params = []
    for on_device_data in (True, False):
        config.data.on_device = on_device_data
        feed = make_sweep_feed(config, dataset, mesh)
        states, rngs = create_sweep_state(model, configs, dataset.data_shape)
        stream = feed.batches(0)
        for _ in range(4):
            states, metrics = feed.step(states, next(stream), rngs)
        stream.close()
        assert np.asarray(states.step).tolist() == [4, 4]
        params.append(jax.device_get(states.params))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), *params)
