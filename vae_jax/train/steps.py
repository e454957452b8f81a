"""The pure train and eval steps: (state, batch, rng) -> (state, metrics), and FactorVAE's
discriminator update inside the train step.

Nothing here is jitted; the trainers jit each step once (`vae_jax.train.feed`), with the state
donated and the batch sharded over the device mesh. The step's rng is the run's
key folded with the step number, so a resumed run draws the same numbers.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from vae_jax.models import VAEOutput, VQVAEOutput
from vae_jax.objectives import disentangle
from vae_jax.train.losses import apply_model, per_example_terms, step_loss
from vae_jax.train.state import TrainState


def binarize_dynamic(x: jax.Array, rng: jax.Array) -> jax.Array:
    """Resamples binary pixels x ~ Bernoulli(intensity), fresh each time an image is used."""
    return jax.random.bernoulli(rng, x).astype(x.dtype)


def discriminator_update(state: TrainState, z: jax.Array, rng: jax.Array):
    """FactorVAE's discriminator step on the batch's codes z [B, d] (no gradient to the VAE):
    real codes against `permute_dims(z)`. Returns (new disc dict, metrics, finite flag)."""
    z = jax.lax.stop_gradient(z)
    z_perm = disentangle.permute_dims(z, rng)

    def loss_fn(params):
        logits = state.disc_apply_fn({"params": params}, jnp.concatenate([z, z_perm]))
        return disentangle.discriminator_loss(logits[: z.shape[0]], logits[z.shape[0] :])

    params = state.disc["params"]
    grads, metrics = jax.grad(loss_fn, has_aux=True)(params)
    updates, opt_state = state.disc_tx.update(grads, state.disc["opt_state"], params)
    grad_norm = optax.global_norm(grads)
    metrics["disc_grad_norm"] = grad_norm
    finite = jnp.isfinite(metrics["disc_loss"]) & jnp.isfinite(grad_norm)
    return {"params": optax.apply_updates(params, updates), "opt_state": opt_state}, metrics, finite


def make_train_step(likelihood: str, binarize: str = "none") -> Callable:
    """Returns train_step(state, batch, rng) -> (state, metrics) for images batch [B, ...].

    The objective is the state's (`state.loss_spec`, `vae_jax.train.losses.step_loss`): the
    one-sample ELBO with the analytic KL, beta, capacity or a disentangling method, or a VAE's
    importance-weighted bound. For FactorVAE the step also trains the
    discriminator (`discriminator_update`), as disentanglement_lib does: from the same batch, the
    codes z ~ q(z|x) it sampled for the VAE are the discriminator's q(z) samples and their
    dimension-wise permutation over the batch its prod_j q(z_j) samples. The alternative (pythae,
    facebookresearch/disentangling-correlated-factors: half of the batch for the VAE, the other
    half permuted for the discriminator) halves the VAE's batch; this keeps the study's batch
    of 64 for the VAE and its numbers comparable with dlib's, and needs one batch per step.

    A step whose loss or gradient is not finite leaves the state unchanged (so the
    step counter stops there) and reports `finite = 0`; the engine's loop stops the run.
    """

    def train_step(state: TrainState, batch: jax.Array, rng: jax.Array):
        rng = jax.random.fold_in(rng, state.step)
        bin_rng, rng = jax.random.split(rng)
        x = binarize_dynamic(batch, bin_rng) if binarize == "dynamic" else batch
        factor = state.loss_spec.method == "factor_vae"
        loss_fn = functools.partial(step_loss, state=state, x=x, rng=rng, likelihood=likelihood)
        grads, (metrics, model_state, z) = jax.grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
        disc = state.disc
        if factor:  # dlib's protocol: both updates from the same batch and the same pre-step state.
            disc, disc_metrics, disc_finite = discriminator_update(state, z, jax.random.fold_in(rng, 1))
            metrics, finite = {**metrics, **disc_metrics}, finite & disc_finite
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            model_state=model_state,
            disc=disc,
        )
        new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
        metrics = {**metrics, "grad_norm": grad_norm, "finite": finite.astype(jnp.float32)}
        return new_state, metrics

    return train_step


def make_eval_step(likelihood: str) -> Callable:
    """Returns eval_step(state, batch, rng) -> per-example metrics ([B] arrays) and codes.

    Besides the ELBO terms it returns each example's deterministic code, so the final evaluation
    encodes the eval set once: `latent` (a VAE's posterior mean [B, d], with `logvar`; an AE's
    code) or, for a VQ-VAE, the code `indices` [B, positions, levels].

    Eval images are used as given: a dynamically binarized dataset is evaluated on one
    fixed binarization made when it is loaded.
    """

    def eval_step(state: TrainState, batch: jax.Array, rng: jax.Array):
        x = batch
        out, _ = apply_model(state, state.params, x, rng, train=False)
        terms = per_example_terms(out, x, likelihood)
        result = {"rec": -terms["rec_ll"]}
        if isinstance(out, VAEOutput):
            result.update(kl=terms["kl"], neg_elbo=terms["kl"] - terms["rec_ll"])
            if "kl_per_dim" in terms:
                result["kl_per_dim"] = terms["kl_per_dim"]
            # The encoder's pass is the one the model's output made (XLA shares it) but for a
            # model that samples on its way to the top latent (the two-layer VAE).
            mean, logvar = state.apply_fn(state.variables, x, method="encode")
            result.update(latent=mean.astype(jnp.float32), logvar=logvar.astype(jnp.float32))
        elif isinstance(out, VQVAEOutput):
            levels = 1 if out.vq.level_usage is None else out.vq.level_usage.shape[0]
            result["indices"] = out.vq.indices.reshape(x.shape[0], -1, levels)  # [B, positions, levels]
        else:
            result["latent"] = out.z.astype(jnp.float32)
        return result

    return eval_step
