"""vae_jax: latent-variable generative models, from PCA to VQ-VAE, in JAX/Flax.

The researcher's entry points (each loads on first use, so `import vae_jax` stays light):

  load_run(workdir, step=None, member=None)   a trained run or sweep member, ready to encode,
                                              decode, reconstruct and sample
  train_and_evaluate(config, workdir)         train a config in workdir (resuming), evaluate it
  build_model(config, data_shape)             the Flax module a config names
  compute_metrics(names, data, representation_fn, seed)   disentanglement metrics
  get_ground_truth_data(name)                 dSprites and kin, with their factors

Importing the package changes nothing in the host process; the CPU allocator settings that
speed up XLA:CPU steps are opt-in (`vae_jax.ops.allocator`).
"""

from vae_jax import _lazy

_EXPORTS = {
    "TrainedRun": "vae_jax.train.restore",
    "build_model": "vae_jax.models",
    "compute_metrics": "vae_jax.evaluate.disentanglement",
    "get_ground_truth_data": "vae_jax.data",
    "load_run": "vae_jax.train.restore",
    "train_and_evaluate": "vae_jax.train.dispatch",
}
__all__ = sorted(_EXPORTS)
__getattr__ = _lazy.loader(__name__, _EXPORTS)


def __dir__():
    return sorted({*globals(), *__all__})
