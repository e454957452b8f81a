"""Likelihoods, KL divergences and the losses of every model, as pure functions.

Reduction convention (all functions here): log-likelihoods and KL terms are
*summed* over data / latent dimensions, giving one value per example, and the
losses are the *mean over the batch* of those per-example values. With this
convention `loss` at beta = 1 is exactly the negative ELBO in nats per example.
Beta is applied in exactly one place, `vae_loss`.
"""

import jax
import jax.numpy as jnp

from vae_jax.errors import ConfigError

Metrics = dict[str, jax.Array]
_LOG_2PI = jnp.log(2.0 * jnp.pi)


def _sum_except_batch(x: jax.Array) -> jax.Array:
    return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x | logits) = sum_i x_i log s(l_i) + (1 - x_i) log(1 - s(l_i)).

    Args:
      logits: decoder logits, [B, ...].
      x: targets in [0, 1] (binary, or grey levels for the continuous relaxation), [B, ...].

    Returns:
      Per-example log-likelihood, [B], summed over all data dimensions.
    """
    if logits.shape != x.shape:
        raise ValueError(f"logits shape {logits.shape} != data shape {x.shape}")
    # x log s(l) + (1 - x) log s(-l) = x l - softplus(l): one softplus instead of two log-sigmoids.
    return _sum_except_batch(x * logits - jax.nn.softplus(logits))


def gaussian_log_likelihood(mean: jax.Array, x: jax.Array, log_scale: jax.Array) -> jax.Array:
    """log N(x | mean, exp(log_scale)^2), summed over data dimensions.

    Args:
      mean: decoder output, [B, ...].
      x: targets, [B, ...].
      log_scale: log standard deviation, a scalar (fixed or learned) or broadcastable to x.

    Returns:
      Per-example log-likelihood, [B].
    """
    if mean.shape != x.shape:
        raise ValueError(f"mean shape {mean.shape} != data shape {x.shape}")
    log_scale = jnp.broadcast_to(log_scale, x.shape)
    z = (x - mean) * jnp.exp(-log_scale)
    return _sum_except_batch(-0.5 * (z**2 + _LOG_2PI) - log_scale)


def kl_standard_normal_per_dim(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per latent dimension, [B, d].

    KL = 0.5 * (mean^2 + exp(logvar) - 1 - logvar) (Kingma & Welling 2014, App. B).
    """
    return 0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)


def kl_standard_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL of a diagonal Gaussian to N(0, I), summed over latent dimensions, [B]."""
    return jnp.sum(kl_standard_normal_per_dim(mean, logvar), axis=-1)


def reconstruction_log_likelihood(
    decoder_out: jax.Array, x: jax.Array, likelihood: str, log_scale: jax.Array | float = 0.0
) -> jax.Array:
    """Dispatch to the Bernoulli (logits) or Gaussian (mean) likelihood, per example [B]."""
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(decoder_out, x)
    if likelihood == "gaussian":
        return gaussian_log_likelihood(decoder_out, x, jnp.asarray(log_scale))
    raise ConfigError(f"unknown likelihood {likelihood!r}; valid: 'bernoulli', 'gaussian'")


def capacity(step: jax.Array, c_max: jax.Array, anneal_steps: jax.Array) -> jax.Array:
    """C(t) of Burgess et al. 2018: rises linearly from 0 to c_max over anneal_steps, then stays."""
    frac = jnp.clip(step / jnp.maximum(anneal_steps, 1), 0.0, 1.0)
    return c_max * frac


def kl_weight(step: jax.Array, beta: jax.Array, warmup_steps: jax.Array) -> jax.Array:
    """beta(t): rises linearly from 0 to beta over warmup_steps (KL warm-up, Bowman et al. 2016;
    Sonderby et al. 2016), then stays; warmup_steps = 0 gives beta from the first step."""
    frac = jnp.where(warmup_steps > 0, jnp.clip(step / jnp.maximum(warmup_steps, 1), 0.0, 1.0), 1.0)
    return beta * frac


def vae_loss(
    rec_ll: jax.Array,
    kl: jax.Array,
    beta: jax.Array | float = 1.0,
    gamma: jax.Array | float = 0.0,
    capacity_now: jax.Array | float = 0.0,
) -> tuple[jax.Array, Metrics]:
    """beta-VAE loss with optional capacity control (Higgins et al. 2017; Burgess et al. 2018).

    loss = mean_b[ -rec_ll_b + beta * KL_b ]             when gamma == 0
    loss = mean_b[ -rec_ll_b ] + gamma * |mean_b KL_b - C|  when gamma > 0

    Args:
      rec_ll: per-example reconstruction log-likelihood, [B].
      kl: per-example KL(q(z|x) || p(z)), [B].
      beta: KL weight (beta = 1 gives the negative ELBO).
      gamma: capacity weight; 0 switches capacity control off. May be a traced array.
      capacity_now: the target KL C(t) in nats.

    Returns:
      (loss, metrics) with `neg_elbo` (always at beta = 1), `rec` (= -rec_ll), `kl`.
    """
    rec = -jnp.mean(rec_ll)
    kl_mean = jnp.mean(kl)
    beta_term = beta * kl_mean
    capacity_term = gamma * jnp.abs(kl_mean - capacity_now)
    loss = rec + jnp.where(gamma > 0, capacity_term, beta_term)
    metrics = {"loss": loss, "neg_elbo": rec + kl_mean, "rec": rec, "kl": kl_mean}
    return loss, metrics


def vq_loss(
    rec_ll: jax.Array,
    z_e: jax.Array,
    z_q: jax.Array,
    commitment_cost: jax.Array | float,
    use_codebook_loss: bool = True,
) -> tuple[jax.Array, Metrics]:
    """VQ-VAE loss of van den Oord et al. 2017, eq. 3.

    loss = -log p(x|z_q) + ||sg[z_e] - e||^2 + commitment_cost * ||z_e - sg[e]||^2,
    with squared norms summed over latent positions and channels, mean over the batch.
    The codebook term is dropped for the EMA codebook, which is not learned by gradient.

    Args:
      rec_ll: per-example reconstruction log-likelihood, [B].
      z_e: encoder outputs before quantization, [B, ..., D].
      z_q: the selected codewords (no straight-through), [B, ..., D].
      commitment_cost: beta of the paper.
      use_codebook_loss: False for the EMA codebook.
    """
    rec = -jnp.mean(rec_ll)
    commitment = jnp.mean(_sum_except_batch(jnp.square(z_e - jax.lax.stop_gradient(z_q))))
    codebook = jnp.mean(_sum_except_batch(jnp.square(jax.lax.stop_gradient(z_e) - z_q)))
    loss = rec + commitment_cost * commitment
    if use_codebook_loss:
        loss = loss + codebook
    return loss, {"loss": loss, "rec": rec, "commitment": commitment, "codebook_loss": codebook}


def ae_loss(rec_ll: jax.Array) -> tuple[jax.Array, Metrics]:
    """Autoencoder loss: the negative reconstruction log-likelihood, mean over the batch."""
    rec = -jnp.mean(rec_ll)
    return rec, {"loss": rec, "rec": rec}


def bits_per_dim(nll_nats: jax.Array, num_dims: int) -> jax.Array:
    """Convert a per-example NLL in nats to bits per data dimension."""
    return nll_nats / (num_dims * jnp.log(2.0))
