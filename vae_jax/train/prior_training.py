"""Training the autoregressive code prior of a trained VQ-VAE, from that run's checkpoint.

The VQ-VAE's encoder maps every training image to its code grid once; the prior
is trained by maximum likelihood on the grids, through the engine's loop (progress,
checkpoints, resumption, signals, non-finite check); its test NLL goes to results.json
in bits per code and bits per image dimension, and its samples, decoded by the
VQ-VAE, to images/samples_<step>.png.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vae_jax import data as data_lib
from vae_jax.data import pipeline
from vae_jax.errors import ConfigError
from vae_jax.evaluate.pictures import to_image
from vae_jax.models import compute_dtype
from vae_jax.models.code_prior import PixelCNNPrior, grid_to_levels, levels_to_grid, sample_codes
from vae_jax.train import checkpoint, engine, sharding
from vae_jax.train.restore import load_run
from vae_jax.train.state import TrainState
from vae_jax.train.workdir import Workdir


def _check_vqvae_workdir(prior_config) -> Path:
    """The VQ-VAE's workdir; ConfigError (before anything is written or loaded) if it holds none."""
    vq_dir = Path(prior_config.prior.vqvae_workdir)
    if not (vq_dir / "config.json").exists():
        raise ConfigError(
            f"config.prior.vqvae_workdir={str(vq_dir)!r} is invalid: it holds no trained VQ-VAE "
            "(config.json missing); train one there first (experiments/vq_vae.py)"
        )
    return vq_dir


def _vqvae(prior_config):
    """The trained VQ-VAE of prior_config.prior.vqvae_workdir and its dataset (read from
    prior_config.data, since where the data lives may differ here)."""
    vqvae = load_run(_check_vqvae_workdir(prior_config))
    data_config = ml_collections.ConfigDict(vqvae.config.to_dict())
    data_config.data.update(prior_config.data.to_dict())
    return vqvae, data_lib.load_dataset(data_config)


def train_prior(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Trains the code prior of config.prior.vqvae_workdir's VQ-VAE; writes the workdir files.

    Args:
      config: a config with model.name='vq_prior' (experiments/vq_prior.py).
      workdir: where config.json, metrics.jsonl (train records of the NLL in nats per code as
        `loss`, one eval record), checkpoints/, images/samples_<step>.png, results.json and
        TensorBoard events go.

    Returns:
      The results (also in results.json).
    """
    _check_vqvae_workdir(config)
    writer = Workdir(workdir)
    try:
        writer.write_config(config)
        results = _train_and_sample(config, writer)
        writer.log(results["step"], "eval", results)
        writer.write_results(results)
    finally:
        writer.close()
    return results


def _train_and_sample(config: ml_collections.ConfigDict, writer: Workdir) -> dict:
    """Encodes the data, trains and evaluates the prior, decodes its samples; returns the results."""
    vqvae, dataset = _vqvae(config)
    train_codes, test_codes = vqvae.encode(dataset.train_images), vqvae.encode(dataset.eval_images)
    levels = train_codes.shape[-1] if train_codes.ndim == 4 else 0  # residual VQ: [N, h, w, levels]
    if levels:
        train_codes, test_codes = levels_to_grid(train_codes), levels_to_grid(test_codes)
    if train_codes.ndim != 3:
        raise ConfigError(
            f"config.prior.vqvae_workdir={config.prior.vqvae_workdir!r} is invalid: the code prior needs "
            "a 2-D code grid (a conv VQ-VAE)"
        )
    num_codes = vqvae.model.quantizer.codebook_size
    prior = PixelCNNPrior(num_codes, config.prior.features, config.prior.layers, compute_dtype(config.model))
    state, nll = _fit(config, prior, train_codes, writer)
    eval_nll = float(np.mean([float(nll(state.params, jnp.asarray(test_codes[i : i + 500])))
                              for i in range(0, len(test_codes), 500)]))  # fmt: skip
    grid = train_codes.shape[1:]
    codes_per_image = int(np.prod(grid))
    image_dims = int(np.prod(dataset.data_shape))
    results = {
        "prior_nll_bits_per_code": eval_nll / np.log(2),
        "prior_bits_per_dim": eval_nll * codes_per_image / (image_dims * np.log(2)),
        "uniform_bits_per_code": float(np.log2(num_codes)),
        "step": int(state.step),
    }
    rng = jax.random.fold_in(jax.random.key(config.seed), 1)
    samples = sample_codes(prior, state.params, rng, 64, grid)
    samples = grid_to_levels(samples, levels) if levels else samples
    writer.write_grid("samples", results["step"], to_image(vqvae.decode(np.asarray(samples))), 8)
    return results


def make_prior_step(prior, tx: optax.GradientTransformation):
    """The prior's objective and its train step.

    Args:
      prior: the PixelCNNPrior.
      tx: its optimizer.

    Returns:
      (nll, step): nll(params, codes [B, h, w]) is the mean NLL in nats per code;
      step(state, codes, rng) -> (state, metrics) one optimizer step on it, for a TrainState
      whose params are the prior's (rng unused: the objective is deterministic). A
      non-finite step leaves the state unchanged and reports `finite = 0`.
    """

    def nll(params, codes):
        logits = prior.apply(params, codes)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, codes))

    def step(state: TrainState, codes, rng):
        del rng
        loss, grads = jax.value_and_grad(nll)(state.params, codes)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            opt_state=opt_state)  # fmt: skip
        finite = jnp.isfinite(loss) & jnp.isfinite(optax.global_norm(grads))
        new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
        return new, {"loss": loss, "finite": finite.astype(jnp.float32)}

    return nll, step


def _fit(config, prior, train_codes: np.ndarray, writer: Workdir):
    """Maximum likelihood on the code grids [N, h, w] by the engine's loop; returns (state, nll)."""
    run = engine.Run(config, writer, dataset=None, model=prior, mesh=sharding.make_mesh(),
                     manager=checkpoint.make_manager(writer.path, config.train.keep_checkpoints))  # fmt: skip
    try:
        sharding.check_batch_divides(config.train.batch_size, run.mesh)
        params = prior.init(jax.random.key(config.seed), jnp.asarray(train_codes[:2]))
        tx = optax.adam(config.optim.learning_rate)
        state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                           model_state={}, hparams={}, apply_fn=prior.apply, tx=tx)  # fmt: skip
        repl, data_sh = sharding.replicated(run.mesh), sharding.data_sharding(run.mesh)
        state = engine.resume(run, jax.device_put(state, repl))
        nll, step = make_prior_step(prior, tx)
        jitted = jax.jit(
            step, in_shardings=(repl, data_sh, repl), out_shardings=(repl, repl), donate_argnums=0
        )
        batch_at = pipeline.array_batch_fn(
            train_codes, config.train.batch_size, config.seed, jax.process_index(), jax.process_count()
        )
        batches = lambda start: pipeline.prefetch(  # noqa: E731
            batch_at, start, transform=lambda b: sharding.global_batch(b, run.mesh)
        )
        hooks = engine.Hooks(log=lambda t, m: writer.log(t, "train", {"loss": m["loss"]}))
        rng = jax.random.key(0)
        state = engine.train_loop(run, state, lambda s, b: jitted(s, b, rng), batches, hooks)
        return state, jax.jit(nll)
    finally:
        run.close()
