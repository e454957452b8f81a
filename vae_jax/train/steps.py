"""The pure train and eval steps: (state, batch, rng) -> (state, metrics).

Nothing here is jitted; the trainers jit each step once (`vae_jax.train.feed`), with the state
donated and the batch sharded over the device mesh. The step's rng is the run's
key folded with the step number, so a resumed run draws the same numbers.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from vae_jax import objectives
from vae_jax.models import VAEOutput, VQVAEOutput
from vae_jax.objectives_iw import ObjectiveSpec
from vae_jax.train.iw_steps import iw_objective
from vae_jax.train.state import TrainState


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


def compute_loss(out, x, hparams, step, *, likelihood: str, ema_codebook: bool):
    """(loss, metrics) of any model output; the objective follows the output type."""
    terms = per_example_terms(out, x, likelihood)
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
    if vq.level_usage is not None:
        for n in range(vq.level_usage.shape[0]):
            metrics[f"perplexity_level{n}"] = vq.level_perplexity[n]
            metrics[f"codebook_usage_level{n}"] = vq.level_usage[n]
    return loss, metrics


def make_train_step(
    likelihood: str, binarize: str = "none", objective: ObjectiveSpec | None = None
) -> Callable:
    """Returns train_step(state, batch, rng) -> (state, metrics) for images batch [B, ...].

    objective: a VAE's importance-weighted objective (`vae_jax.objectives_iw`); None or the
    one-sample ELBO trains through `compute_loss` (analytic KL, beta, capacity).

    A step whose loss or gradient is not finite leaves the state unchanged (so the
    step counter stops there) and reports `finite = 0`; the engine's loop stops the run.
    """

    def train_step(state: TrainState, batch: jax.Array, rng: jax.Array):
        rng = jax.random.fold_in(rng, state.step)
        bin_rng, rng = jax.random.split(rng)
        x = binarize_dynamic(batch, bin_rng) if binarize == "dynamic" else batch
        ema = "vq" in state.model_state

        def loss_fn(params):
            if objective is not None and not objective.is_single_sample_elbo:
                loss, metrics = iw_objective(state, params, x, rng, objective, likelihood=likelihood)
                return loss, (metrics, state.model_state)
            out, model_state = apply_model(state, params, x, rng, train=True)
            loss, metrics = compute_loss(
                out, x, state.hparams, state.step, likelihood=likelihood, ema_codebook=ema
            )
            return loss, (metrics, model_state)

        grads, (metrics, model_state) = jax.grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            model_state=model_state,
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
