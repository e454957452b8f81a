"""Subprocess worker: three sharded train steps of a small model; saves the final parameters.

Run as `python tests/dp_worker.py KIND[,KIND] OUT.npz` (KIND: vae, vqvae_ema) under any device
count; the parameters of kind k are saved as `<k>/<path>`.
"""

import sys

import jax
import numpy as np

from tests.helpers import small_config
from vae_jax.models import build_model
from vae_jax.train import sharding
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_train_step


def run(kind: str) -> dict[str, np.ndarray]:
    config = small_config(kind)
    model = build_model(config, (28, 28, 1))
    mesh = sharding.make_mesh()
    repl, data = sharding.replicated(mesh), sharding.data_sharding(mesh)
    state = jax.device_put(create_train_state(model, config, (28, 28, 1), jax.random.key(0)), repl)
    step = jax.jit(
        make_train_step(config.loss.likelihood, "dynamic" if kind == "vae" else "none"),
        in_shardings=(repl, data, repl), out_shardings=(repl, repl), donate_argnums=0,
    )  # fmt: skip
    images = np.random.default_rng(0).random((3, 32, 28, 28, 1)).astype(np.float32)
    for batch in images:
        state, _ = step(state, sharding.global_batch(batch, mesh), jax.random.key(1))
    leaves = jax.tree_util.tree_leaves_with_path({"params": state.params, "model_state": state.model_state})
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


if __name__ == "__main__":
    result = {"__devices__": np.array(jax.device_count())}
    for kind in sys.argv[1].split(","):
        result.update({f"{kind}/{k}": v for k, v in run(kind).items()})
    np.savez(sys.argv[2], **result)
