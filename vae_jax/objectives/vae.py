"""The losses of the AE, the (beta-, capacity-annealed) VAE and the VQ-VAE, as pure functions.

Reduction convention (all functions here): log-likelihoods and KL terms are
*summed* over data / latent dimensions, giving one value per example, and the
losses are the *mean over the batch* of those per-example values. With this
convention `loss` at beta = 1 is exactly the negative ELBO in nats per example.
Beta is applied in exactly one place, `vae_loss`.
"""

import jax
import jax.numpy as jnp

from vae_jax.objectives.densities import sum_except_batch

Metrics = dict[str, jax.Array]


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
    commitment = jnp.mean(sum_except_batch(jnp.square(z_e - jax.lax.stop_gradient(z_q))))
    codebook = jnp.mean(sum_except_batch(jnp.square(jax.lax.stop_gradient(z_e) - z_q)))
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
