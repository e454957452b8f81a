"""Subprocess worker: every quantizer option trained three sharded steps on a 1-device and an
8-device mesh of the same process (XLA_FLAGS=--xla_force_host_platform_device_count=8).

  python tests/quantize_worker.py OUT.npz
Saves `<option>/<devices>/<path>` for each option of OPTIONS and mesh size 1 and 8.
"""

import sys

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from tests.helpers import small_config
from vae_jax.models import build_model
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_train_step

OPTIONS = {  # each option at least once, few programs (compiling dominates)
    "rotation_kmeans_cosine_projection": {
        "estimator": "rotation", "kmeans_init": 3, "cosine": True, "encoder_dim": 8, "code_dim": 3,
    },
    "ema_kmeans_restart": {"ema": True, "kmeans_init": 3, "restart_threshold": 0.5},
    "fsq": {"kind": "fsq", "fsq_levels": (5, 4, 3), "encoder_dim": 8},
    "rvq_ema_dropout_kmeans_rotation": {
        "kind": "rvq", "num_levels": 3, "dropout": True, "ema": True, "kmeans_init": 2,
        "estimator": "rotation",
    },
}  # fmt: skip


def train(options: dict, devices: int) -> dict[str, np.ndarray]:
    config = small_config("vqvae_ema")
    config.model.vq.update({"ema": False, "restart_threshold": 0.0, **options})
    model = build_model(config, (28, 28, 1))
    mesh = jax.make_mesh((devices,), ("data",), (AxisType.Auto,), devices=jax.devices()[:devices])
    repl, data = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    state = jax.device_put(create_train_state(model, config, (28, 28, 1), jax.random.key(0)), repl)
    step = jax.jit(make_train_step("gaussian"), in_shardings=(repl, data, repl), out_shardings=(repl, repl))
    for batch in np.random.default_rng(0).random((3, 32, 28, 28, 1)).astype(np.float32):
        state, metrics = step(state, jax.device_put(batch, data), jax.random.key(1))
        assert float(metrics["finite"]) == 1.0
    leaves = jax.tree_util.tree_leaves_with_path({"params": state.params, "model_state": state.model_state})
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def main(out: str) -> None:
    assert jax.device_count() == 8, "run with --xla_force_host_platform_device_count=8"
    result = {}
    for name, options in OPTIONS.items():
        for devices in (1, 8):
            result.update({f"{name}/{devices}/{k}": v for k, v in train(options, devices).items()})
    np.savez(out, **result)


if __name__ == "__main__":
    main(sys.argv[1])
