"""The pure train and eval steps: (state, batch, rng) -> (state, metrics).

Nothing here is jitted; the trainers jit each step once (`vae_jax.train.feed`), with the state
donated and the batch sharded over the device mesh. The step's rng is the run's
key folded with the step number, so a resumed run draws the same numbers.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from vae_jax import objectives
from vae_jax import objectives_disentangle as disentangle
from vae_jax.models import VAEOutput, VQVAEOutput
from vae_jax.objectives_iw import ObjectiveSpec
from vae_jax.train.iw_steps import iw_objective
from vae_jax.train.state import LossSpec, TrainState


def binarize_dynamic(x: jax.Array, rng: jax.Array) -> jax.Array:
    """Resamples binary pixels x ~ Bernoulli(intensity), fresh each time an image is used."""
    return jax.random.bernoulli(rng, x).astype(x.dtype)


def apply_model(state: TrainState, params, x: jax.Array, rng: jax.Array, train: bool):
    """Runs the model; returns (output, new model_state). EMA statistics update only in training."""
    sample_rng, vq_rng = jax.random.split(rng)
    variables = {"params": params, **state.model_state}
    mutable = list(state.model_state) if train and state.model_state else False
    out = state.apply_fn(
        variables, x, train=train, rngs={"sample": sample_rng, "vq": vq_rng}, mutable=mutable
    )
    if mutable:
        return out[0], out[1]
    return out, state.model_state


def per_example_terms(out, x: jax.Array, likelihood: str) -> dict[str, jax.Array]:
    """Per-example [B] reconstruction log-likelihood and, for VAEs, KL (also per dim [B, d])."""
    terms = {"rec_ll": objectives.reconstruction_log_likelihood(out.recon, x, likelihood, out.log_scale)}
    if isinstance(out, VAEOutput) and out.kl_sample is not None:  # no closed form: sampled KL
        terms["kl"] = out.kl_sample
    elif isinstance(out, VAEOutput):
        terms["kl_per_dim"] = objectives.kl_standard_normal_per_dim(out.mean, out.logvar)
        terms["kl"] = jnp.sum(terms["kl_per_dim"], axis=-1)
    return terms


def compute_loss(out, x, hparams, step, *, likelihood: str, ema_codebook: bool, spec=None, disc_logits=None):
    """(loss, metrics) of any model output; the objective follows the output type and spec.method.

    disc_logits: FactorVAE's discriminator logits at out.z, [B, 2] (spec.method 'factor_vae').
    """
    terms = per_example_terms(out, x, likelihood)
    spec = spec or LossSpec()
    if isinstance(out, VAEOutput) and spec.method != "vae":
        return _disentangling_loss(out, terms, hparams, spec, disc_logits)
    if isinstance(out, VAEOutput):
        c = objectives.capacity(step, hparams["c_max"], hparams["anneal_steps"])
        beta = objectives.kl_weight(step, hparams["beta"], hparams["beta_warmup"])
        loss, metrics = objectives.vae_loss(terms["rec_ll"], terms["kl"], beta, hparams["gamma"], c)
        metrics["capacity"] = c
        metrics["beta_now"] = beta
    elif isinstance(out, VQVAEOutput):
        loss, metrics = _vq_objective(out, terms["rec_ll"], hparams["commitment_cost"], ema_codebook)
    else:
        loss, metrics = objectives.ae_loss(terms["rec_ll"])
    return loss, metrics


def _vq_objective(out: VQVAEOutput, rec_ll, commitment_cost, ema_codebook: bool):
    """VQ-VAE loss of any quantizer, and its code statistics (per level for residual VQ).

    `code_counts` is the batch's code histogram, int32 [K] ([levels, K] for residual VQ; FSQ's
    implicit codebook too): the loop sums it over an epoch (`engine.Hooks.epoch_sums`), since
    the per-batch perplexity and usage grow with the batch size.

    The codebook and commitment terms compare the quantizer's `inputs` (z_e, or its projection,
    normalisation or residuals) with the codewords; FSQ has neither term: its loss is the
    reconstruction NLL alone (Mentzer et al. 2023).
    """
    vq = out.vq
    if vq.codewords is None:
        loss, metrics = objectives.ae_loss(rec_ll)
    else:
        inputs = out.z_e if vq.inputs is None else vq.inputs
        loss, metrics = objectives.vq_loss(
            rec_ll, inputs, vq.codewords, commitment_cost, use_codebook_loss=not ema_codebook
        )
    metrics["perplexity"] = vq.perplexity
    metrics["codebook_usage"] = vq.usage
    metrics["code_counts"] = vq.counts.astype(jnp.int32)
    if vq.level_usage is not None:
        for n in range(vq.level_usage.shape[0]):
            metrics[f"perplexity_level{n}"] = vq.level_perplexity[n]
            metrics[f"codebook_usage_level{n}"] = vq.level_usage[n]
    return loss, metrics


def _disentangling_loss(out: VAEOutput, terms, hparams, spec: LossSpec, disc_logits):
    """The objectives of Locatello et al. 2019's study other than beta-VAE / AnnealedVAE."""
    rec_ll, kl = terms["rec_ll"], terms["kl"]
    if spec.method == "beta_tcvae":
        return disentangle.beta_tcvae_loss(
            rec_ll, kl, out.z, out.mean, out.logvar,
            beta=hparams["tc_beta"], estimator=spec.tc_estimator, dataset_size=spec.dataset_size,
        )  # fmt: skip
    if spec.method in ("dip_vae_i", "dip_vae_ii"):
        lambda_od = hparams["dip_lambda_od"]
        return disentangle.dip_vae_loss(
            rec_ll, kl, out.mean, out.logvar, lambda_od=lambda_od,
            lambda_d=hparams["dip_lambda_d_factor"] * lambda_od, dip_type=spec.method[len("dip_vae_") :],
        )  # fmt: skip
    if spec.method == "factor_vae":
        return disentangle.factor_vae_loss(rec_ll, kl, disc_logits, hparams["factor_gamma"])
    raise ValueError(f"unknown loss method {spec.method!r}")


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


def _loss(params, *, state: TrainState, x, rng, likelihood: str, objective: ObjectiveSpec | None):
    """The step's objective at params; aux: (metrics, new model_state, the codes z or None)."""
    if objective is not None and not objective.is_single_sample_elbo:
        loss, metrics = iw_objective(state, params, x, rng, objective, likelihood=likelihood)
        return loss, (metrics, state.model_state, None)
    out, model_state = apply_model(state, params, x, rng, train=True)
    logits = None
    if state.loss_spec.method == "factor_vae":
        # The discriminator's parameters are constants here: only the VAE's get this gradient.
        logits = state.disc_apply_fn({"params": state.disc["params"]}, out.z)
    loss, metrics = compute_loss(
        out, x, state.hparams, state.step, likelihood=likelihood, ema_codebook="vq" in state.model_state,
        spec=state.loss_spec, disc_logits=logits,
    )  # fmt: skip
    return loss, (metrics, model_state, getattr(out, "z", None))


def make_train_step(
    likelihood: str, binarize: str = "none", objective: ObjectiveSpec | None = None
) -> Callable:
    """Returns train_step(state, batch, rng) -> (state, metrics) for images batch [B, ...].

    objective: a VAE's importance-weighted objective (`vae_jax.objectives_iw`); None or the
    one-sample ELBO trains through `compute_loss` (analytic KL, beta, capacity, and the
    disentangling method of `state.loss_spec`).

    The method is the state's (`state.loss_spec`). For FactorVAE the step also trains the
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
        loss_fn = functools.partial(
            _loss, state=state, x=x, rng=rng, likelihood=likelihood, objective=objective
        )
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
    """Returns eval_step(state, batch, rng) -> per-example metrics ([B] arrays).

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
        if isinstance(out, VQVAEOutput):
            levels = 1 if out.vq.level_usage is None else out.vq.level_usage.shape[0]
            result["indices"] = out.vq.indices.reshape(x.shape[0], -1, levels)  # [B, positions, levels]
        return result

    return eval_step
