"""Training batches built inside the jitted step from small host draws: the host pipeline's batches.

The host pipeline (`pipeline.array_batch_fn`, `pipeline.ground_truth_batch_fn`) makes each
step's batch on the host and copies it to the device. Here only what is random about a batch
crosses, `CHUNK` steps at a time:

* an in-memory training set: each step's example indices (`pipeline.global_batch_indices`);
  the images are placed on the device once;
* a procedural ground-truth source with `device_observations` (dSprites, Color- and
  Textured-dSprites): each step's factors and the few numbers per image its observations
  draw (colours; crop offsets and tints), drawn with the same numpy Generator per
  (seed, step), by the same calls in the same order, each process's rows as that process
  draws them; the step renders the images (`observations_on_device`).

So the batches are the host pipeline's: the same for in-memory data and dSprites, and for
Color-dSprites; Textured-dSprites adds its tint in float32 where the host adds it in
float64 (pixels within 1 ulp). Noisy-dSprites (a draw per pixel, as large as its image) and
the file-based factor sets (image tables of up to 12 GB) keep the host pipeline.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from vae_jax.data import pipeline

CHUNK = 1000  # steps whose draws cross to the device together


class DeviceBatches(NamedTuple):
    """How a source's batches are made on the device."""

    tables: dict[str, np.ndarray]  # placed on the device once
    draws_at: Callable[[int], dict[str, np.ndarray]]  # step -> the global batch's draws
    build: Callable[[dict, dict], jax.Array]  # (tables, one step's draws) -> batch [B, ...], traced


def for_dataset(dataset, batch_size: int, seed: int) -> DeviceBatches | None:
    """The device batches of a `vae_jax.data.Dataset` (None: its source keeps the host pipeline)."""
    nproc = jax.process_count()
    if dataset.train_images is not None:
        return _in_memory(dataset.train_images, batch_size, seed)
    source = dataset.ground_truth
    if source is not None and getattr(source, "device_observations", False):
        return _ground_truth(source, batch_size, seed, nproc)
    return None


def _in_memory(images: np.ndarray, batch_size: int, seed: int) -> DeviceBatches:
    pipeline.global_batch_indices(len(images), batch_size, seed, 0)  # checks the sizes

    def draws_at(step: int) -> dict[str, np.ndarray]:
        # The processes' slices of the global batch, in order, are the global batch's indices.
        return {
            "indices": pipeline.global_batch_indices(len(images), batch_size, seed, step).astype(np.int32)
        }

    return DeviceBatches({"images": images}, draws_at, lambda tables, d: tables["images"][d["indices"]])


def _ground_truth(source, batch_size: int, seed: int, nproc: int) -> DeviceBatches:
    def draws_at(step: int) -> dict[str, np.ndarray]:
        parts = []
        for p in range(nproc):  # as `pipeline.ground_truth_batch_fn` draws in process p
            rng = np.random.default_rng([seed, step])
            factors = source.sample_factors(batch_size, rng)[pipeline.process_slice(batch_size, p, nproc)]
            parts.append({"factors": factors.astype(np.int32), **source.observation_draws(factors, rng)})
        return {k: _single(np.concatenate([d[k] for d in parts])) for k in parts[0]}

    def build(tables: dict, draws: dict) -> jax.Array:
        return source.observations_on_device(draws["factors"], draws, tables)

    return DeviceBatches(source.device_tables(), draws_at, build)


def _single(a: np.ndarray) -> np.ndarray:
    """float64 draws as the float32 the device computes in."""
    return a.astype(np.float32) if a.dtype == np.float64 else a


def chunk_at(batches: DeviceBatches, chunk: int) -> dict[str, np.ndarray]:
    """The draws of steps [chunk * CHUNK, (chunk + 1) * CHUNK), stacked: {name: [CHUNK, B, ...]}."""
    steps = [batches.draws_at(s) for s in range(chunk * CHUNK, (chunk + 1) * CHUNK)]
    return {k: np.stack([d[k] for d in steps]) for k in steps[0]}
