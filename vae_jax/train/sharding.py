"""Device mesh and shardings: the batch is split on the 'data' axis, the state replicated (a
sweep's members split on the 'sweep' axis).

This is `jax.jit` over a `jax.make_mesh` mesh, the successor of `pmap`. Axes are
`AxisType.Auto` so XLA's partitioner places the collectives (e.g. the global
code counts of the VQ layer) without sharding annotations in the model code.

Across processes a sweep's mesh lists the devices process by process, so each member (a row of
the mesh) lies on one process, or spans whole processes: each process then feeds the rows of
the global batch that its devices hold (`process_rows`), and evaluates the members it holds.
"""

import functools

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from vae_jax.errors import ConfigError


def make_mesh(num_sweep: int = 1) -> jax.sharding.Mesh:
    """A ('sweep', 'data') mesh over all devices; 'sweep' gets num_sweep devices. Across processes
    with num_sweep > 1, devices are listed process by process (see the module docstring)."""
    n = jax.device_count()
    if n % num_sweep:
        raise ValueError(f"{n} devices do not split into a sweep axis of {num_sweep}")
    shape, axes = (num_sweep, n // num_sweep), ("sweep", "data")
    if jax.process_count() == 1 or num_sweep == 1:
        return jax.make_mesh(shape, axes, (AxisType.Auto,) * 2)
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    return jax.sharding.Mesh(np.array(devices).reshape(shape), axes, axis_types=(AxisType.Auto,) * 2)


def processes_aligned(num_sweep: int, num_devices: int, local_devices: int) -> bool:
    """Whether a sweep axis of num_sweep keeps each member's devices (num_devices / num_sweep of
    them) within one process or over whole processes of local_devices each."""
    per_member = num_devices // num_sweep
    return local_devices % per_member == 0 or per_member % local_devices == 0


@functools.lru_cache(maxsize=16)
def process_rows(mesh: jax.sharding.Mesh) -> tuple[int, int]:
    """(index, count): this process feeds rows [index * B / count, (index + 1) * B / count) of
    every global batch of B rows, the rows its devices hold on the 'data' axis ((0, 1): all)."""
    size = mesh.shape["data"]
    held = data_sharding(mesh).addressable_devices_indices_map((size,)).values()
    positions = sorted({i for (rows,) in held for i in range(*rows.indices(size))})
    span = len(positions)
    if positions == list(range(positions[0], positions[0] + span)) and positions[0] % span == 0:
        return positions[0] // span, size // span
    if span * jax.process_count() == size:  # disjoint but interleaved (a pod's physical device order)
        return jax.process_index(), jax.process_count()  # each example of the batch still fed once
    raise ValueError(f"process {jax.process_index()} holds data rows {positions} of {size}: not a block")


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
    """Assembles the global batch from this process's rows (`process_rows`), sharded on 'data'."""
    sharding = data_sharding(mesh)
    if jax.process_count() == 1:  # the same array, by the cheaper call
        return jax.device_put(local, sharding)
    global_shape = (local.shape[0] * process_rows(mesh)[1], *local.shape[1:])
    return jax.make_array_from_process_local_data(sharding, local, global_shape)


def replicate(tree, mesh: jax.sharding.Mesh):
    """Host arrays (the same on every process) -> arrays replicated over all the mesh's devices.

    Across processes `jax.device_put` onto devices another process holds first checks, by a
    collective, that every process passed the same value; called from a prefetch thread, that
    collective races the train step's own and the processes can wait on each other forever. Each
    process already holds the whole array, so it is assembled from local data, with no check."""
    repl = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, repl)

    def whole(x):  # this process's copy is the global array
        return jax.make_array_from_process_local_data(repl, np.asarray(x), np.shape(x))

    return jax.tree.map(whole, tree)


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


def member_owners(tree) -> list[int]:
    """The process that evaluates and reports each member (leading index) of stacked arrays sharded
    on 'sweep': the lowest process that holds it, so that no member is reported twice."""
    leaf = jax.tree.leaves(tree)[0]
    owners = [jax.process_count()] * leaf.shape[0]
    for device, index in leaf.sharding.devices_indices_map(leaf.shape).items():
        for j in range(*index[0].indices(leaf.shape[0])):
            owners[j] = min(owners[j], device.process_index)
    return owners


def local_member(tree, j: int):
    """Member j of stacked arrays sharded on 'sweep', from a shard this process holds, as arrays
    on this process's first device (for the work it does alone: the member's evaluation)."""
    device = jax.local_devices()[0]

    def take(x):
        for shard in x.addressable_shards:
            start, stop, _ = shard.index[0].indices(x.shape[0])
            if start <= j < stop:
                return jax.device_put(shard.data[j - start], device)
        raise ValueError(f"member {j} is on no device of process {jax.process_index()}")

    return jax.tree.map(take, tree)
