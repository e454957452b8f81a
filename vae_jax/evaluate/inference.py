"""Inference with a trained model: the one path every evaluator takes to the model.

`map_batches` runs a jitted function over an array in fixed-size batches (the last one padded,
so each function compiles once per model). `Inference` binds a model to its variables and
answers, batched and jitted, in numpy:

  posterior(x)      (mean, logvar) of q(z|x), float32 [N, d]                    (VAE)
  latent(x)         the deterministic code: posterior mean, AE code, or z_e     (any model)
  encode(x)         what a model's code is: the posterior mean, the AE code, or
                    the VQ code indices [N, ...] ([N, ..., levels] for residual VQ)
  decode(z)         the decoder's mean in data space (VQ: from code indices)
  reconstruct(x)    decode(encode(x)) (VQ: through the quantizer)
  sample(n, rng)    decoded draws from the prior                                 (VAE)

The pictures, the disentanglement metrics' representation, the likelihood bound, the code
prior and `vae_jax.load_run` all use it. Outputs are float32 whatever the model computes in.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.errors import UserError
from vae_jax.models import VAE, VQVAE


def map_batches(fn: Callable, x, batch_size: int, to_device: Callable = jnp.asarray):
    """fn(batch, i) over x in batches of batch_size (the last padded by repeating its last row);
    returns fn's outputs (a pytree of [batch, ...] arrays) concatenated, padding removed.

    Args:
      fn: (batch, batch index) -> pytree of arrays whose leading axis is the batch's.
      x: an array [N, ...], or a tuple of arrays with the same N (fn then gets a tuple).
      batch_size: rows per call.
      to_device: how a batch reaches fn (e.g. sharded over a mesh).
    """
    arrays = x if isinstance(x, tuple) else (x,)
    n = len(arrays[0])
    outputs = []
    for i, start in enumerate(range(0, n, batch_size)):
        real = min(batch_size, n - start)
        chunks = tuple(_pad(np.asarray(a[start : start + real]), batch_size) for a in arrays)
        batch = tuple(to_device(c) for c in chunks)
        out = jax.device_get(fn(batch if isinstance(x, tuple) else batch[0], i))
        outputs.append(jax.tree.map(lambda v, real=real: np.asarray(v)[:real], out))
    if not outputs:
        raise ValueError("map_batches needs at least one example")
    return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)


def _pad(chunk: np.ndarray, size: int) -> np.ndarray:
    if len(chunk) == size:
        return chunk
    return np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)])


def data_mean(decoder_out: jax.Array, likelihood: str) -> jax.Array:
    """The decoder's output as the mean of p(x|z) in data space: sigmoid(logits) for a Bernoulli
    likelihood, the Gaussian's mean as it is."""
    out = decoder_out.astype(jnp.float32)
    return jax.nn.sigmoid(out) if likelihood == "bernoulli" else out


# The model calls, each one compiled program per model and batch shape (the model is static).
@functools.partial(jax.jit, static_argnums=0)
def _posterior(model, variables, x):
    mean, logvar = model.apply(variables, x, method=model.encode)
    return mean.astype(jnp.float32), logvar.astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=0)
def _latent(model, variables, x):
    out = model.apply(variables, x, method=model.encode)
    return (out[0] if isinstance(model, VAE) else out).astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=0)
def _codes(model, variables, x):
    return model.apply(variables, x).vq.indices


@functools.partial(jax.jit, static_argnums=(0, 3))
def _decode(model, variables, z, likelihood):
    method = model.decode_indices if isinstance(model, VQVAE) else model.decode
    return data_mean(model.apply(variables, z, method=method), likelihood)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _reconstruct(model, variables, x, likelihood):
    if isinstance(model, VAE):  # the decoded posterior mean: deterministic
        mean, _ = model.apply(variables, x, method=model.encode)
        return data_mean(model.apply(variables, mean, method=model.decode), likelihood)
    out = model.apply(variables, x, train=False, rngs={"sample": jax.random.key(0)})
    return data_mean(out.recon, likelihood)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _sample(model, variables, num, likelihood, rng):
    z = model.apply(variables, num, method="sample_prior", rngs={"sample": rng})
    return data_mean(model.apply(variables, z, method=model.decode), likelihood)


class Inference:
    """A model bound to its variables: batched, jitted encode / decode / sample (see the module).

    Args:
      model: a Flax module of `vae_jax.models` (AE, VAE, VQ-VAE).
      variables: its variables, {'params': ..., **other collections}.
      likelihood: 'bernoulli' or 'gaussian', the decoder's likelihood (config.loss.likelihood).
      batch_size: examples per compiled call.
    """

    def __init__(self, model, variables: dict, likelihood: str, batch_size: int = 256):
        self.model, self.variables, self.likelihood = model, variables, likelihood
        self.batch_size = batch_size

    def _map(self, fn, x) -> np.ndarray:
        return map_batches(lambda batch, _: fn(self.model, self.variables, batch), x, self.batch_size)

    @property
    def is_vae(self) -> bool:
        return isinstance(self.model, VAE)

    @property
    def is_vq(self) -> bool:
        return isinstance(self.model, VQVAE)

    def posterior(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(mean, logvar) of the Gaussian posterior q(z|x), each [N, d] (VAEs only)."""
        if not self.is_vae:
            raise UserError(
                f"{type(self.model).__name__} has no Gaussian posterior; use latent() or encode()"
            )
        return self._map(_posterior, x)

    def latent(self, x) -> np.ndarray:
        """The deterministic continuous code: the posterior mean (VAE), z (AE), z_e (VQ-VAE)."""
        return self._map(_latent, x)

    def encode(self, x) -> np.ndarray:
        """The model's code of x: the posterior mean, the AE's code, or a VQ-VAE's code indices."""
        return self._map(_codes, x) if self.is_vq else self.latent(x)

    def decode(self, z) -> np.ndarray:
        """The decoder's mean in data space for codes z (code indices for a VQ-VAE)."""
        return map_batches(
            lambda batch, _: _decode(self.model, self.variables, batch, self.likelihood), z, self.batch_size
        )

    def reconstruct(self, x) -> np.ndarray:
        """The decoder's mean in data space for x's code (a VAE decodes its posterior mean)."""
        return map_batches(
            lambda batch, _: _reconstruct(self.model, self.variables, batch, self.likelihood),
            x,
            self.batch_size,
        )

    def sample(self, num: int, rng: jax.Array) -> np.ndarray:
        """num decoded draws from the prior p(z) (a VAE's standard normal or VampPrior)."""
        if not self.is_vae:
            raise UserError(
                f"{type(self.model).__name__} has no prior to sample: sample a VAE, or train a code "
                "prior for a VQ-VAE (experiments/vq_prior.py)"
            )
        return np.asarray(_sample(self.model, self.variables, int(num), self.likelihood, rng))
