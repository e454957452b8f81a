"""A sweep's pure parts: the members' stacked train states and the sweep's jitted train step.

Numeric hyperparameters enter the step as arrays, so members that differ only in them train as
one program: the step is vmapped (or, on CPU, unrolled member by member; see `vectorization`)
over a member axis sharded on the mesh's `sweep` axis, with the batch sharded on `data`. The
trainer that runs them is `vae_jax.train.sweep`; this module imports none of its dependencies
(data pipeline, checkpoints, reports), so worker processes and benchmarks start fast.
"""

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from vae_jax import ops
from vae_jax.train import sharding
from vae_jax.train.losses import LOSS_HPARAMS
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_train_step


def sweep_axis(num_members: int) -> int:
    """The largest device count that divides both the members and the devices; across processes
    also one that keeps each member's devices within one process or over whole processes
    (`sharding.processes_aligned`), so that each process feeds whole rows of its members' batch."""
    n, local = jax.device_count(), jax.local_device_count()
    return max(
        d
        for d in range(1, n + 1)
        if n % d == 0
        and num_members % d == 0
        and (jax.process_count() == 1 or sharding.processes_aligned(d, n, local))
    )


def create_sweep_state(model, configs, data_shape):
    """The members' train states stacked on a leading axis, and their train rngs."""
    base = configs[0]
    hparams = {k: jnp.asarray([float(c.loss[k]) for c in configs], jnp.float32) for k in LOSS_HPARAMS}
    lrs = jnp.asarray([float(c.optim.learning_rate) for c in configs], jnp.float32)
    keys = [jax.random.key(c.seed) for c in configs]
    init_rngs = jnp.stack([jax.random.fold_in(k, 0) for k in keys])
    train_rngs = jnp.stack([jax.random.fold_in(k, 1) for k in keys])
    init = jax.vmap(
        lambda r, h, lr: create_train_state(model, base, data_shape, r, hparams=h, learning_rate=lr)
    )
    return jax.jit(init)(init_rngs, hparams, lrs), train_rngs


def vectorization(config) -> str:
    """'vmap' (one batched program: what fills a GPU/TPU) or 'map' (the members' steps unrolled
    one after another inside one program). 'auto' picks 'map' on CPU: there a vmapped
    convolution becomes a grouped convolution or a batched product over the members'
    activations, both slower than the members' own steps one after another, and a CPU is
    already busy with one model (benchmarks/sweep_scaling.py measures it). Vmapped, the conv
    layers take the form `ops.resolve_impl` gives a vmapped sweep (batched products off the CPU)."""
    mode = config.sweep.vectorize
    if mode == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return mode


def _unrolled(inner, mesh):
    """The 'map' form: each device group steps the members it holds one after another.

    Under `shard_map`, manual over the mesh's `sweep` axis only (XLA still places the `data`
    axis's collectives), a group sees its own members and the whole batch, so no member's state
    leaves the devices that hold it. Indexing member i of the globally sharded stack instead would
    gather every member to every device at each step."""

    def local_members(states, batch, rngs):
        outs = [inner(jax.tree.map(lambda x, i=i: x[i], states), batch, rngs[i]) for i in range(len(rngs))]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    if mesh.shape["sweep"] == 1:
        return local_members
    return jax.shard_map(
        local_members, mesh=mesh, in_specs=(P("sweep"), P(), P("sweep")), out_specs=P("sweep"),
        axis_names=frozenset({"sweep"}), check_vma=False,
    )  # fmt: skip


def make_sweep_step(config, mesh, batch_of=None):
    """The jitted train step of a sweep: (states[N], batch, rngs[N]) -> (states, metrics[N]).

    batch_of: (states, step_input) -> the members' shared batch, traced in the step (an on-device
    feed, `vae_jax.train.feed`); then the step takes that input, replicated, in place of the batch.
    """
    members, data = NamedSharding(mesh, P("sweep")), sharding.data_sharding(mesh)
    inner = make_train_step(config.loss.likelihood, config.data.binarize)
    if vectorization(config) == "vmap":
        vmapped = jax.vmap(inner, in_axes=(0, None, 0))

        def members_step(states, batch, rngs):
            with ops.vmapped_sweep():  # conv_impl='auto' takes its vmapped form while this traces
                return vmapped(states, batch, rngs)

    else:
        members_step = _unrolled(inner, mesh)

    if batch_of is None:
        step, batch_sharding = members_step, data
    else:

        def step(states, step_input, rngs):
            return members_step(states, batch_of(states, step_input), rngs)

        batch_sharding = sharding.replicated(mesh)
    return jax.jit(
        step,
        in_shardings=(members, batch_sharding, members),
        out_shardings=(members, members),
        donate_argnums=0,
    )
