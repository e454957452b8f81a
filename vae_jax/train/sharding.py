"""Device mesh and shardings: the batch is split on the 'data' axis, the state replicated.

This is `jax.jit` over a `jax.make_mesh` mesh, the successor of `pmap`. Axes are
`AxisType.Auto` so XLA's partitioner places the collectives (e.g. the global
code counts of the VQ layer) without sharding annotations in the model code.
"""

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from vae_jax.errors import ConfigError


def make_mesh(num_sweep: int = 1) -> jax.sharding.Mesh:
    """A ('sweep', 'data') mesh over all devices; 'sweep' gets num_sweep devices."""
    n = jax.device_count()
    if n % num_sweep:
        raise ValueError(f"{n} devices do not split into a sweep axis of {num_sweep}")
    return jax.make_mesh((num_sweep, n // num_sweep), ("sweep", "data"), (AxisType.Auto,) * 2)


def data_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """Leading (batch) axis split over 'data'."""
    return NamedSharding(mesh, P("data"))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_divides(batch_size: int, mesh: jax.sharding.Mesh) -> None:
    n = mesh.shape["data"]
    if batch_size % n:
        raise ConfigError(
            f"train.batch_size={batch_size} does not divide over the {n} devices of the 'data' "
            f"axis; use a multiple of {n}"
        )


def global_batch(local: np.ndarray, mesh: jax.sharding.Mesh) -> jax.Array:
    """Assembles the global batch from this process's rows, sharded on 'data'."""
    sharding = data_sharding(mesh)
    if jax.process_count() == 1:  # the same array, by the cheaper call
        return jax.device_put(local, sharding)
    global_shape = (local.shape[0] * jax.process_count(), *local.shape[1:])
    return jax.make_array_from_process_local_data(sharding, local, global_shape)


def process_local(tree):
    """tree with every array as this process's local instance on its first device, for work each
    process does on its own (evaluation in a multi-process run); the arrays must be replicated."""
    device = jax.local_devices()[0]

    def local(x):
        if not isinstance(x, jax.Array):
            return x
        if not x.is_fully_replicated:
            raise ValueError(f"process_local needs replicated arrays; got one sharded as {x.sharding}")
        return jax.device_put(x.addressable_data(0), device)

    return jax.tree.map(local, tree)
