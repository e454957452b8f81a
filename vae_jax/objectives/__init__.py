"""Objectives as pure functions: densities, the AE / VAE / VQ-VAE losses, the importance-weighted
bounds and the disentangling objectives.

densities     the diagonal Gaussian, Bernoulli / Gaussian likelihoods, KL to N(0, I), VampPrior
vae           beta-VAE with capacity annealing and KL warm-up, AE and VQ-VAE losses
importance    IWAE, MIWAE, PIWAE, CIWAE and the k-sample ELBO from log importance weights
disentangle   beta-TCVAE, DIP-VAE-I/II and FactorVAE (with its discriminator's loss)

Reduction convention everywhere: log-likelihoods and KL terms are summed over data / latent
dimensions (one value per example, in nats), losses are the mean over the batch; at beta = 1
the VAE's loss is exactly the negative ELBO.
"""

from vae_jax.objectives import disentangle, importance
from vae_jax.objectives.densities import (
    LIKELIHOODS,
    LOG_2PI,
    bernoulli_log_likelihood,
    decoded_log_likelihood,
    gaussian_log_likelihood,
    kl_standard_normal_per_dim,
    log_normal_diag,
    log_standard_normal,
    normal_log_density,
    reconstruction_log_likelihood,
    sum_except_batch,
    vamp_log_prior,
)
from vae_jax.objectives.vae import Metrics, ae_loss, bits_per_dim, capacity, kl_weight, vae_loss, vq_loss

__all__ = [
    "LIKELIHOODS",
    "LOG_2PI",
    "Metrics",
    "ae_loss",
    "bernoulli_log_likelihood",
    "bits_per_dim",
    "decoded_log_likelihood",
    "capacity",
    "disentangle",
    "gaussian_log_likelihood",
    "importance",
    "kl_standard_normal_per_dim",
    "kl_weight",
    "log_normal_diag",
    "log_standard_normal",
    "normal_log_density",
    "reconstruction_log_likelihood",
    "sum_except_batch",
    "vae_loss",
    "vamp_log_prior",
    "vq_loss",
]
