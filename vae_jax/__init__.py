"""vae_jax: latent-variable generative models, from PCA to VQ-VAE, in JAX/Flax."""

from vae_jax import _malloc

_malloc.keep_freed_memory()
