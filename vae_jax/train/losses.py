"""The loss of a train step, assembled from the model's output and the config's static loss choice.

`LossSpec` is the one record of the structural choices (method, importance-weighted objective,
TC estimator); the numbers (beta, gamma, ...) are arrays in `TrainState.hparams`, so a sweep
vmaps over them. `step_loss` is what the train step differentiates: one-sample objectives read
the model's output (`compute_loss`: analytic KL, beta, capacity, the disentangling methods, the
VQ losses); importance-weighted ones read S = M * K log weights from the model's `log_weights`.
PIWAE's two targets share one set of samples and one backward pass: the log weights are
computed twice with the same rng, once with the inference network stop-gradiented (for the
generative model's IWAE_{MK}) and once with the generative model stop-gradiented (for the
inference network's MIWAE_{M,K}).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import objectives
from vae_jax.models import ImportanceTerms, VAEOutput, VQVAEOutput
from vae_jax.objectives import disentangle, importance

# config.loss.method: the objective of a Gaussian VAE; 'vae' is beta-VAE and, with
# loss.gamma > 0, the capacity-annealed VAE.
LOSS_METHODS = ("vae", "beta_tcvae", "dip_vae_i", "dip_vae_ii", "factor_vae")
# Loss hyperparameters that live in the state as float arrays, so a sweep can vmap over them.
LOSS_HPARAMS = (
    "beta", "beta_warmup", "gamma", "c_max", "anneal_steps", "commitment_cost",
    "tc_beta", "factor_gamma", "dip_lambda_od", "dip_lambda_d_factor", "ciwae_beta",
)  # fmt: skip


class LossSpec(NamedTuple):
    """The structural (static) choices of the objective, from config.loss."""

    method: str = "vae"  # LOSS_METHODS
    objective: str = "elbo"  # importance.OBJECTIVES: the bound a VAE trains on
    num_samples: int = 1  # K importance samples per group
    num_outer: int = 1  # M groups
    tc_estimator: str = "minibatch"  # beta-TCVAE's TC estimator: 'minibatch' (dlib) | 'mws' | 'mss'
    dataset_size: int = 0  # N of the 'mws' / 'mss' estimators

    @classmethod
    def from_config(cls, loss: ml_collections.ConfigDict) -> "LossSpec":
        return cls(
            loss.get("method", "vae"), str(loss.get("objective", "elbo")), int(loss.get("num_samples", 1)),
            int(loss.get("num_outer", 1)), loss.get("tc_estimator", "minibatch"),
            int(loss.get("tc_dataset_size", 0)),
        )  # fmt: skip

    @property
    def total_samples(self) -> int:
        return self.num_samples * self.num_outer

    @property
    def importance_weighted(self) -> bool:
        """False for the plain one-sample ELBO, which `compute_loss` computes with the analytic KL."""
        return not (self.objective == "elbo" and self.total_samples == 1)


def hparams_from_config(config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
    """The loss hyperparameters of config.loss as float32 scalars."""
    return {k: jnp.asarray(float(config.loss[k]), jnp.float32) for k in LOSS_HPARAMS}


def apply_model(state, params, x: jax.Array, rng: jax.Array, train: bool):
    """Runs the model; returns (output, new model_state). EMA statistics update only in training."""
    sample_rng, vq_rng = jax.random.split(rng)
    mutable = list(state.model_state) if train and state.model_state else False
    out = state.apply_fn(
        state.variables_with(params),
        x,
        train=train,
        rngs={"sample": sample_rng, "vq": vq_rng},
        mutable=mutable,
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


def is_inference_param(name: str) -> bool:
    """Top-level parameter collections of q(z | x): 'encoder' (and the two-layer VAE's 'top_encoder')."""
    return name.endswith("encoder")


def stop_gradient_part(params: dict, inference: bool) -> dict:
    """params with the inference network's (inference=True) or the generative model's leaves frozen."""
    return {
        name: jax.lax.stop_gradient(sub) if is_inference_param(name) == inference else sub
        for name, sub in params.items()
    }


def importance_terms(state, params, x: jax.Array, rng: jax.Array, num: int, *, likelihood: str):
    """ImportanceTerms [num, B] of the model in state, with params, for the batch x."""
    variables = state.variables_with(params)
    return state.apply_fn(variables, x, num, likelihood, method="log_weights", rngs={"sample": rng})


def iw_objective(state, params, x: jax.Array, rng: jax.Array, spec: LossSpec, *, likelihood: str):
    """(loss, metrics) of spec's importance-weighted objective on the batch x [B, ...]."""
    num = spec.total_samples
    if spec.objective == "piwae":
        generative = importance_terms(
            state, stop_gradient_part(params, True), x, rng, num, likelihood=likelihood
        )
        inference = importance_terms(
            state, stop_gradient_part(params, False), x, rng, num, likelihood=likelihood
        )
        loss, metrics = importance.piwae_loss(generative.log_w, inference.log_w, spec.num_outer)
        terms: ImportanceTerms = generative
    else:
        terms = importance_terms(state, params, x, rng, num, likelihood=likelihood)
        loss, metrics = importance.iw_loss(
            terms.log_w, spec.objective, spec.num_outer, state.hparams["ciwae_beta"]
        )
    metrics["rec"] = -jnp.mean(terms.log_px)
    metrics["kl"] = jnp.mean(terms.log_qz - terms.log_pz)
    return loss, metrics


def step_loss(params, *, state, x: jax.Array, rng: jax.Array, likelihood: str):
    """The train step's objective at params; aux: (metrics, new model_state, the codes z or None)."""
    spec = state.loss_spec
    if spec.importance_weighted:
        loss, metrics = iw_objective(state, params, x, rng, spec, likelihood=likelihood)
        return loss, (metrics, state.model_state, None)
    out, model_state = apply_model(state, params, x, rng, train=True)
    logits = None
    if spec.method == "factor_vae":
        # The discriminator's parameters are constants here: only the VAE's get this gradient.
        logits = state.disc_apply_fn({"params": state.disc["params"]}, out.z)
    loss, metrics = compute_loss(
        out, x, state.hparams, state.step, likelihood=likelihood, ema_codebook="vq" in state.model_state,
        spec=spec, disc_logits=logits,
    )  # fmt: skip
    return loss, (metrics, model_state, getattr(out, "z", None))
