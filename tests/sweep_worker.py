"""Subprocess worker: a 4-member sweep in each vectorization and each member trained alone, three
steps each, for several kinds of sweep in one process (one JAX start-up for all).

  python tests/sweep_worker.py KIND[,KIND...] OUT.npz     KIND: vae|vqvae_ema|ciwae|disentangle
Saves member i's parameters of kind k from the sweep in form `v` (FORMS[k]: vmap, map, or
vmap:IMPL, vmapped with the conv layers in form `model.conv_impl=IMPL`) as
`<k>/<v>/<i>/<path>` and alone as `<k>/alone/<i>/<path>` (`<k>/alone:IMPL/...` with that conv form);
the members are trained alone once for all vectorizations.
`disentangle` does this for each method of DISENTANGLE (FactorVAE with its discriminator), in the
vmap form, under `disentangle/<method>/`.
"""

import re
import sys

import jax
import ml_collections
import numpy as np

from tests.helpers import small_config
from vae_jax.models import build_model
from vae_jax.train import sharding, sweep_spec, sweep_step
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_train_step

SPECS = {
    "vae": "loss.beta=1,4 * seed=0,2",  # conv, every form
    "vqvae_ema": "loss.commitment_cost=0.1,0.5,1,2 | seed=0,2,4,6",
    "ciwae": "loss.ciwae_beta=0.1,0.9 * seed=0,3",  # 3 importance samples (structural)
}
# 'map' steps member i by slicing it out of the stacked state, running the solo step and stacking
# the results: the same code for every kind, so one kind checks it (vmap's batching is per kind).
# The conv VAE also runs vmapped in both product forms of its conv layers (`vae_jax.ops`: what
# 'auto' gives a vmapped sweep off the CPU, and the exact-FLOP one); 'vmap' alone is 'auto' here.
FORMS = {"vae": "vmap,map,vmap:matmul,vmap:batched", "vqvae_ema": "vmap", "ciwae": "vmap"}
DISENTANGLE = {
    "factor_vae": "loss.factor_gamma=0,50 * seed=0,3",
    "beta_tcvae": "loss.tc_beta=1,8 * seed=0,3",
    "dip_vae_i": "loss.dip_lambda_od=1,20 * seed=0,3",
    "dip_vae_ii": "loss.dip_lambda_od=1,20 * seed=0,3",
}


def flat(tree, prefix):
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {prefix + jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def member_moves(hlo: str, members: int, data: int) -> int:
    """The collectives of a compiled sweep step that move members between devices: all-gathers of
    a [members, ...] stack, and collective permutes between devices of different members (the
    step's partitions are the mesh's devices row by row, a row of `data` devices per member group;
    FactorVAE's permutation of the batch moves rows within one group)."""
    moves = 0
    for m in re.finditer(r"= \w+\[(\d+)[\d,]*\][^ ]* all-gather(?:-start)?\(", hlo):
        moves += int(m.group(1)) == members
    for pairs in re.findall(r"collective-permute(?:-start)?\(.*?source_target_pairs=\{(.*?)\}\}", hlo):
        moves += any(int(a) // data != int(b) // data for a, b in re.findall(r"(\d+),(\d+)", pairs))
    return moves


def train_members(config, spec: str, vectorizations: str, prefix: str = "") -> dict[str, np.ndarray]:
    """The members' parameters (and model state, discriminator) after the sweep and alone."""
    configs = [sweep_spec.member_config(config, a) for a in sweep_spec.parse_sweep(spec, config)]
    mesh = sharding.make_mesh(num_sweep=sweep_step.sweep_axis(len(configs)))
    images = np.random.default_rng(0).random((3, 32, 28, 28, 1)).astype(np.float32)
    members = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("sweep"))
    result = {"__sweep_axis__": np.array(mesh.shape["sweep"])}
    for form in vectorizations.split(","):
        vectorize, _, impl = form.partition(":")
        config.sweep.vectorize = vectorize
        form_config = config.copy_and_resolve_references()
        form_config.model.conv_impl = impl or config.model.conv_impl
        form_model = build_model(form_config, (28, 28, 1))
        states, rngs = sweep_step.create_sweep_state(form_model, configs, (28, 28, 1))
        states, rngs = jax.device_put(states, members), jax.device_put(rngs, members)
        step = sweep_step.make_sweep_step(config, mesh)
        compiled = step.lower(states, sharding.global_batch(images[0], mesh), rngs).compile().as_text()
        moves = member_moves(compiled, len(configs), mesh.shape["data"])
        result[f"{prefix}__moves__/{form}"] = np.array(moves)
        for batch in images:
            states, _ = step(states, sharding.global_batch(batch, mesh), rngs)
        # To the host in one transfer, then split: indexing the sharded arrays member by member
        # would launch small multi-device programs while steps may still be in flight, and XLA's
        # in-process CPU collectives can deadlock on two programs' collectives interleaved across
        # devices (seen on 2 cores: 4 of 8 devices waiting in the step's collective-permute).
        tree = jax.device_get({"p": states.params, "m": states.model_state, "d": states.disc})
        for i in range(len(configs)):
            result.update(flat(jax.tree.map(lambda x, i=i: x[i], tree), f"{prefix}{form}/{i}/"))
    single = jax.jit(make_train_step(config.loss.likelihood, config.data.binarize))
    for impl in dict.fromkeys(form.partition(":")[2] for form in vectorizations.split(",")):
        solo_config = config.copy_and_resolve_references()
        solo_config.model.conv_impl = impl or config.model.conv_impl
        solo_model = build_model(solo_config, (28, 28, 1))
        solo = f"{prefix}alone{':' + impl if impl else ''}/"
        for i, c in enumerate(configs):
            key = jax.random.key(c.seed)
            alone = create_train_state(solo_model, c, (28, 28, 1), jax.random.fold_in(key, 0))
            for batch in images:
                alone, _ = single(alone, batch, jax.random.fold_in(key, 1))
            result.update(flat({"p": alone.params, "m": alone.model_state, "d": alone.disc}, f"{solo}{i}/"))
    return result


def train_kind(kind: str) -> dict[str, np.ndarray]:
    """The members' parameters of one kind of sweep, in both forms and alone."""
    config = small_config("vqvae_ema" if kind == "vqvae_ema" else "vae")
    config.optim.learning_rate = 3e-3
    if kind == "ciwae":
        config.model.encoder, config.model.hidden = "mlp", (32,)
        config.loss.objective, config.loss.num_samples = "ciwae", 3
        # Burda et al.'s Adam eps = 1e-4: with eps = 1e-8 Adam turns a near-zero gradient whose sign
        # differs in the last bit between the two programs into a step of +-lr on that weight.
        config.optim.kwargs = ml_collections.ConfigDict({"eps": 1e-4})
    if kind == "vqvae_ema":
        # Few code vectors per batch: a nearest-code argmin is discontinuous, and with thousands of
        # vectors a last-bit difference between the vmapped and the single program flips a near tie.
        config.model.encoder, config.model.hidden, config.model.vq.num_latents = "mlp", (64,), 2
    if kind != "disentangle":
        return train_members(config, SPECS[kind], FORMS[kind])
    config.model.encoder, config.model.hidden = "mlp", (64,)  # the objectives are what is tested here
    config.model.disc_hidden = (32, 32)
    config.optim.discriminator.learning_rate = 3e-3
    config.loss.tc_estimator, config.loss.tc_dataset_size = "mss", 1000  # Chen et al.'s, with N
    result = {}
    for method, spec in DISENTANGLE.items():
        config.loss.method = method
        config.loss.dip_lambda_d_factor = 10.0 if method == "dip_vae_i" else 1.0
        result.update(train_members(config, spec, "vmap", prefix=f"{method}/"))
    return result


def main(kinds: str, out: str) -> None:
    result = {}
    for kind in kinds.split(","):
        result.update({f"{kind}/{k}": v for k, v in train_kind(kind).items()})
    np.savez(out, **result)


if __name__ == "__main__":
    main(*sys.argv[1:])
