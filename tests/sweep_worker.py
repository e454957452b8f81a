"""Subprocess worker: a 4-member sweep in each vectorization and each member trained alone, three
steps each.

  python tests/sweep_worker.py {vae|vqvae_ema|ciwae} OUT.npz [vmap,map]
Saves member i's parameters from the sweep in form `v` as `<v>/<i>/<path>` and alone as
`alone/<i>/<path>`; the members are trained alone once for all forms.
"""

import sys

import jax
import ml_collections
import numpy as np

from tests.dp_worker import small_config
from vae_jax.models import build_model
from vae_jax.objectives_iw import spec_from_config
from vae_jax.train import sharding, sweep, sweep_spec
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_train_step

SPECS = {
    "vae": "loss.beta=1,4 * seed=0,3",
    "vqvae_ema": "loss.commitment_cost=0.1,0.5,1,2 | seed=0,2,4,6",
    "ciwae": "loss.ciwae_beta=0.1,0.9 * seed=0,3",  # 3 importance samples (structural)
}


def flat(tree, prefix):
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {prefix + jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def main(kind: str, out: str, vectorizations: str = "vmap,map") -> None:
    config = small_config("vae" if kind == "ciwae" else kind)
    if kind == "ciwae":
        config.model.encoder, config.model.hidden = "mlp", (32,)
        config.loss.objective, config.loss.num_samples = "ciwae", 3
        # Burda et al.'s Adam eps = 1e-4: with eps = 1e-8 Adam turns a near-zero gradient whose sign
        # differs in the last bit between the two programs into a step of +-lr on that weight.
        config.optim.kwargs = ml_collections.ConfigDict({"eps": 1e-4})
    config.optim.learning_rate = 3e-3
    if kind == "vqvae_ema":
        # Few code vectors per batch: a nearest-code argmin is discontinuous, and with thousands of
        # vectors a last-bit difference between the vmapped and the single program flips a near tie.
        config.model.encoder, config.model.hidden, config.model.vq.num_latents = "mlp", (64,), 2
    spec = SPECS[kind]
    configs = [sweep_spec.member_config(config, a) for a in sweep_spec.parse_sweep(spec, config)]
    model = build_model(config, (28, 28, 1))
    mesh = sharding.make_mesh(num_sweep=sweep._sweep_axis(len(configs)))
    images = np.random.default_rng(0).random((3, 32, 28, 28, 1)).astype(np.float32)
    members = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("sweep"))
    result = {"__sweep_axis__": np.array(mesh.shape["sweep"])}
    for vectorize in vectorizations.split(","):
        config.sweep.vectorize = vectorize
        states, rngs = sweep.create_sweep_state(model, configs, (28, 28, 1))
        states, rngs = jax.device_put(states, members), jax.device_put(rngs, members)
        step = sweep.make_sweep_step(config, mesh)
        for batch in images:
            states, _ = step(states, sharding.global_batch(batch, mesh), rngs)
        for i in range(len(configs)):
            member = jax.tree.map(lambda x, i=i: x[i], {"p": states.params, "m": states.model_state})
            result.update(flat(member, f"{vectorize}/{i}/"))
    single = jax.jit(
        make_train_step(config.loss.likelihood, config.data.binarize, spec_from_config(config.loss))
    )
    for i, c in enumerate(configs):
        alone = create_train_state(model, c, (28, 28, 1), jax.random.fold_in(jax.random.key(c.seed), 0))
        for batch in images:
            alone, _ = single(alone, batch, jax.random.fold_in(jax.random.key(c.seed), 1))
        result.update(flat({"p": alone.params, "m": alone.model_state}, f"alone/{i}/"))
    np.savez(out, **result)


if __name__ == "__main__":
    main(*sys.argv[1:])
