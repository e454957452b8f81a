"""Subprocess worker: one of N processes (jax.distributed on loopback, CPU collectives) training
a model together for three steps, each process feeding its own rows of the global batch.

  python tests/multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.npz
With NUM_PROCESSES=1 it is the single-process reference (PORT unused).
"""

import sys

import jax
import numpy as np


def main(pid: int, nproc: int, port: int, out: str) -> None:
    if nproc > 1:
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)
    from tests.dp_worker import small_config
    from vae_jax.data.pipeline import array_batch_fn
    from vae_jax.models import build_model
    from vae_jax.train import sharding
    from vae_jax.train.state import create_train_state
    from vae_jax.train.steps import make_train_step

    config = small_config("vae")
    images = np.random.default_rng(0).random((256, 28, 28, 1)).astype(np.float32)
    batch_at = array_batch_fn(images, 32, seed=0, process_index=jax.process_index(),
                              process_count=jax.process_count())  # fmt: skip
    model = build_model(config, (28, 28, 1))
    mesh = sharding.make_mesh()
    repl, data = sharding.replicated(mesh), sharding.data_sharding(mesh)
    state = jax.device_put(create_train_state(model, config, (28, 28, 1), jax.random.key(0)), repl)
    step = jax.jit(make_train_step("bernoulli", "dynamic"), in_shardings=(repl, data, repl),
                   out_shardings=(repl, repl), donate_argnums=0)  # fmt: skip
    for t in range(3):
        local = batch_at(t)
        assert len(local) == 32 // jax.process_count()
        state, _ = step(state, sharding.global_batch(local, mesh), jax.random.key(1))
    leaves = jax.tree_util.tree_leaves_with_path(state.params)
    result = {jax.tree_util.keystr(p): np.asarray(v.addressable_data(0)) for p, v in leaves}
    result["__processes__"] = np.array(jax.process_count())
    result["__devices__"] = np.array(jax.device_count())
    np.savez(out, **result)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
