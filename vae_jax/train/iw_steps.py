"""The importance-weighted objectives inside the train step: draw S = M * K samples, score them.

The model's `log_weights` method gives log p(x | z_s), log p(z_s) and log q(z_s | x) [S, B]
(one or two stochastic layers, either prior); `vae_jax.objectives_iw` turns them into a loss.
PIWAE's two targets share one set of samples and one backward pass: the log weights are
computed twice with the same rng, once with the inference network stop-gradiented (for the
generative model's IWAE_{MK}) and once with the generative model stop-gradiented (for the
inference network's MIWAE_{M,K}).
"""

import jax
import jax.numpy as jnp

from vae_jax import objectives_iw
from vae_jax.models import ImportanceTerms
from vae_jax.objectives_iw import ObjectiveSpec


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
    variables = {"params": params, **state.model_state}
    return state.apply_fn(variables, x, num, likelihood, method="log_weights", rngs={"sample": rng})


def iw_objective(state, params, x: jax.Array, rng: jax.Array, spec: ObjectiveSpec, *, likelihood: str):
    """(loss, metrics) of spec's importance-weighted objective on the batch x [B, ...]."""
    num = spec.total_samples
    if spec.name == "piwae":
        generative = importance_terms(
            state, stop_gradient_part(params, True), x, rng, num, likelihood=likelihood
        )
        inference = importance_terms(
            state, stop_gradient_part(params, False), x, rng, num, likelihood=likelihood
        )
        loss, metrics = objectives_iw.piwae_loss(generative.log_w, inference.log_w, spec.num_outer)
        terms: ImportanceTerms = generative
    else:
        terms = importance_terms(state, params, x, rng, num, likelihood=likelihood)
        loss, metrics = objectives_iw.iw_loss(terms.log_w, spec, state.hparams["ciwae_beta"])
    metrics["rec"] = -jnp.mean(terms.log_px)
    metrics["kl"] = jnp.mean(terms.log_qz - terms.log_pz)
    return loss, metrics
