"""vae_jax: latent-variable generative models, from PCA to VQ-VAE, in JAX/Flax.

Importing the package changes nothing in the host process; the CPU allocator
settings that speed up XLA:CPU steps are opt-in (`vae_jax.ops.allocator`).
"""
