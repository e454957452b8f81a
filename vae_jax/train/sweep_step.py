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

from vae_jax.train import sharding
from vae_jax.train.losses import LOSS_HPARAMS
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_train_step


def sweep_axis(num_members: int) -> int:
    """The largest device count that divides both the members and the devices; 1 in a multi-process
    run, where every process holds all members and the devices split the batch (members split
    across processes would need gathers for each log line and evaluation)."""
    if jax.process_count() > 1:
        return 1
    return max(
        d for d in range(1, jax.device_count() + 1) if jax.device_count() % d == 0 and num_members % d == 0
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
    already busy with one model (benchmarks/sweep_scaling.py measures it)."""
    mode = config.sweep.vectorize
    if mode == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return mode


def make_sweep_step(config, mesh):
    """The jitted train step of a sweep: (states[N], batch, rngs[N]) -> (states, metrics[N])."""
    members, data = NamedSharding(mesh, P("sweep")), sharding.data_sharding(mesh)
    inner = make_train_step(config.loss.likelihood, config.data.binarize)
    if vectorization(config) == "vmap":
        step = jax.vmap(inner, in_axes=(0, None, 0))
    else:

        def step(states, batch, rngs):
            outs = [
                inner(jax.tree.map(lambda x, i=i: x[i], states), batch, rngs[i]) for i in range(len(rngs))
            ]
            return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    return jax.jit(
        step, in_shardings=(members, data, members), out_shardings=(members, members), donate_argnums=0
    )
