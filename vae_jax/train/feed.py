"""How batches reach the jitted train step: built on the device from small host draws, or from the
host's prefetch thread.

`make_feed` (a single run) and `make_sweep_feed` (a sweep's program) return the jitted step
together with the stream of its per-step inputs. With `data.on_device` and a source that
`vae_jax.data.on_device` builds on the device (in-memory training sets; procedural dSprites and
its colour and texture variants), the source's tables (images, a texture) are copied to the
device once and the draws of `on_device.CHUNK` steps (example indices; factors, colours, crops)
once per chunk; the step reads its row of the chunk at its own step count and builds its batch,
so nothing crosses from the host per step. Otherwise a prefetch thread makes each batch on the
host and copies it. Either way the batches are the host pipeline's (`vae_jax.data.on_device`
says where they differ in rounding).
"""

import functools
import itertools
from collections.abc import Callable, Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vae_jax.data import on_device, pipeline
from vae_jax.train import sharding
from vae_jax.train.steps import make_train_step
from vae_jax.train.sweep_step import make_sweep_step


class Feed(NamedTuple):
    """A jitted step and what it reads."""

    step: Callable  # (state, step_input, rng) -> (state, metrics), state donated
    batches: Callable[[int], Iterator]  # start_step -> the step inputs from start_step + 1 on


class DeviceInput(NamedTuple):
    """A batch built inside the step: `batch(step, step_input)` (traced) from what `inputs` streams."""

    batch: Callable[[jax.Array, tuple], jax.Array]  # (the step's count, step input) -> batch [B, ...]
    inputs: Callable[[int], Iterator]  # start_step -> (chunk of draws, tables) per step, on the device


def host_batches(dataset, mesh) -> Callable[[int], Iterator]:
    """start_step -> device batches [B, ...] sharded on the mesh's data axis (a prefetch thread)."""
    to_device = functools.partial(sharding.global_batch, mesh=mesh)
    return lambda start: pipeline.prefetch(dataset.batch_at, start, transform=to_device)


def device_input(config, dataset, mesh) -> DeviceInput | None:
    """The on-device batches of config's dataset; None without data.on_device or where the source
    keeps the host pipeline (`on_device.for_dataset`)."""
    if not config.data.on_device:
        return None
    source = on_device.for_dataset(dataset, config.train.batch_size, config.seed)
    if source is None:
        return None
    data_sh = sharding.data_sharding(mesh)
    tables = sharding.replicate(source.tables, mesh)

    def batch(step: jax.Array, step_input: tuple) -> jax.Array:
        chunk, tables = step_input
        row = jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, step % on_device.CHUNK, 0, False), chunk)
        return jax.lax.with_sharding_constraint(source.build(tables, row), data_sh)

    def inputs(start: int) -> Iterator[tuple]:
        to_device = functools.partial(sharding.replicate, mesh=mesh)
        first = start // on_device.CHUNK
        chunks = pipeline.prefetch(functools.partial(on_device.chunk_at, source), first, 2, to_device)
        try:
            chunk = None
            for step in itertools.count(start):
                if chunk is None or step % on_device.CHUNK == 0:
                    chunk = next(chunks)
                yield chunk, tables
        finally:
            chunks.close()

    return DeviceInput(batch, inputs)


def make_feed(config, dataset, mesh) -> Feed:
    """The single run's jitted train step and its inputs (see the module docstring)."""
    repl, data_sh = sharding.replicated(mesh), sharding.data_sharding(mesh)
    inner = make_train_step(config.loss.likelihood, config.data.binarize)
    device = device_input(config, dataset, mesh)
    if device is None:
        step = jax.jit(
            inner, in_shardings=(repl, data_sh, repl), out_shardings=(repl, repl), donate_argnums=0
        )
        return Feed(step, host_batches(dataset, mesh))

    def fed_step(state, step_input, rng):
        return inner(state, device.batch(state.step, step_input), rng)

    step = jax.jit(fed_step, in_shardings=(repl,) * 3, out_shardings=(repl, repl), donate_argnums=0)
    return Feed(step, device.inputs)


def make_sweep_feed(config, dataset, mesh) -> Feed:
    """A sweep program's jitted step `(states[N], step_input, rngs[N])` and its inputs; all members
    train on each step's one batch. On the device the batch is that of the sweep's step count, the
    members' largest: a diverged member's own count stops (its state stays frozen)."""
    device = device_input(config, dataset, mesh)
    if device is None:
        return Feed(make_sweep_step(config, mesh), host_batches(dataset, mesh))
    step = make_sweep_step(config, mesh, lambda states, x: device.batch(jnp.max(states.step), x))
    return Feed(step, device.inputs)
