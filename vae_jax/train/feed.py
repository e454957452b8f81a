"""How batches reach the jitted train step: from the host's prefetch thread, or gathered on the device.

`make_feed` returns the jitted step of a single run together with the stream of its
per-step inputs. With `data.on_device` an in-memory training set is copied to the device
once, and so is each epoch's example order; the step reads its batch's indices out of
that order at its own `state.step` and gathers the images itself, so nothing crosses from
the host per step. Either way the batches are those of `pipeline.global_batch_indices`.
"""

import functools
import itertools
from collections.abc import Callable, Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.data import pipeline
from vae_jax.train import sharding
from vae_jax.train.steps import make_train_step


class Feed(NamedTuple):
    """A jitted step and what it reads."""

    step: Callable  # (state, step_input, rng) -> (state, metrics), state donated
    batches: Callable[[int], Iterator]  # start_step -> the step inputs from start_step + 1 on


def host_batches(dataset, mesh) -> Callable[[int], Iterator]:
    """start_step -> device batches [B, ...] sharded on the mesh's data axis (a prefetch thread)."""
    to_device = functools.partial(sharding.global_batch, mesh=mesh)
    return lambda start: pipeline.prefetch(dataset.batch_at, start, transform=to_device)


def make_feed(config, dataset, mesh) -> Feed:
    """The single run's jitted train step and its inputs (see the module docstring)."""
    repl, data_sh = sharding.replicated(mesh), sharding.data_sharding(mesh)
    inner = make_train_step(config.loss.likelihood, config.data.binarize)
    if not (config.data.on_device and dataset.train_images is not None):
        step = jax.jit(
            inner, in_shardings=(repl, data_sh, repl), out_shardings=(repl, repl), donate_argnums=0
        )
        return Feed(step, host_batches(dataset, mesh))
    return _device_feed(inner, config, dataset.train_images, mesh)


def _device_feed(inner, config, train_images: np.ndarray, mesh) -> Feed:
    repl, data_sh = sharding.replicated(mesh), sharding.data_sharding(mesh)
    images = jax.device_put(train_images, repl)
    num_examples, batch_size = len(train_images), config.train.batch_size
    steps_per_epoch = num_examples // batch_size
    pipeline.global_batch_indices(num_examples, batch_size, config.seed, 0)  # checks the sizes

    def gather_step(state, order, rng, images):
        start = (state.step % steps_per_epoch) * batch_size
        indices = jax.lax.dynamic_slice_in_dim(order, start, batch_size)
        batch = jax.lax.with_sharding_constraint(jnp.take(images, indices, axis=0), data_sh)
        return inner(state, batch, rng)

    jitted = jax.jit(gather_step, in_shardings=(repl,) * 4, out_shardings=(repl, repl), donate_argnums=0)

    def epoch_orders(start_step: int) -> Iterator[jax.Array]:
        """Per step, the device copy of its epoch's example order (one transfer per epoch)."""
        epoch, order = None, None
        for step in itertools.count(start_step):
            if step // steps_per_epoch != epoch:
                epoch = step // steps_per_epoch
                perm = pipeline.epoch_permutation(num_examples, config.seed, epoch)
                order = jax.device_put(perm.astype(np.int32), repl)
            yield order

    return Feed(lambda state, order, rng: jitted(state, order, rng, images), epoch_orders)
