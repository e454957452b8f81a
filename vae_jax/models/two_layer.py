"""The VAE with two stochastic layers of Burda et al. 2016 (Sec. 5, their "2 stochastic layers").

Generative model p(x, z1, z2) = p(z2) p(z1 | z2) p(x | z1) with p(z2) = N(0, I) and diagonal
Gaussians p(z1 | z2); inference q(z1, z2 | x) = q(z1 | x) q(z2 | z1). In the paper's layout
each arrow is an MLP of two deterministic tanh layers: 100 units around the 100-d z1,
50 around the 50-d z2, the decoder mirroring the encoder.

The class is a VAE whose `latent_dim` is the top layer z2: `encode` maps x to q(z2 | mean of
q(z1 | x)) and `decode` maps z2 through the mean of p(z1 | z2) to the data, so pictures,
traversals and active units read the top layer. Training and L_k use the full stochastic
path through `__call__` (one sample, KL estimated by sampling) and `log_weights`. Every
network's output is cast to float32 (`float32`), so the layers' densities are float32.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.models.autoencoders import VAE, ImportanceTerms, VAEOutput, float32
from vae_jax.objectives import decoded_log_likelihood, log_normal_diag


def _split(h: jax.Array, dim: int) -> tuple[jax.Array, jax.Array]:
    return h[..., :dim], h[..., dim:]


def _sample(rng: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    return mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape, mean.dtype)


class TwoLayerVAE(VAE):
    """x -> z1 -> z2 inference, z2 -> z1 -> x generation; `latent_dim` is z2's size, the prior N(0, I).

    encoder: x -> 2 * bottom_latent_dim features (q(z1 | x)); decoder: z1 -> data (p(x | z1)).
    top_encoder: z1 -> 2 * latent_dim (q(z2 | z1)); top_decoder: z2 -> 2 * bottom_latent_dim
    (p(z1 | z2)). Networks act on the last axis, so sample axes pass through them.
    """

    top_encoder: nn.Module | None = None
    top_decoder: nn.Module | None = None
    bottom_latent_dim: int = 100

    @property
    def analytic_kl(self) -> bool:
        return False

    def _q_z1(self, x: jax.Array):
        return _split(float32(self.encoder(x)), self.bottom_latent_dim)

    def _q_z2(self, z1: jax.Array):
        return _split(float32(self.top_encoder(z1)), self.latent_dim)

    def _p_z1(self, z2: jax.Array):
        return _split(float32(self.top_decoder(z2)), self.bottom_latent_dim)

    def _p_x(self, z1: jax.Array) -> jax.Array:
        """The decoder's output (logits or mean) for z1 [B, bottom_latent_dim]."""
        return float32(self.decoder(z1))

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, logvar) of q(z2 | z1 = mean of q(z1 | x)), each [B, latent_dim]."""
        return self._q_z2(self._q_z1(x)[0])

    def decode(self, z: jax.Array) -> jax.Array:
        """Decoder output for z2 [B, latent_dim] through the mean of p(z1 | z2)."""
        return self._p_x(self._p_z1(z)[0])

    def _sample_path(self, x: jax.Array, num_samples: int):
        """z1, z2 [S, B, d] and log q(z1, z2 | x), log p(z1, z2) [S, B]."""
        m1, lv1 = self._q_z1(x)
        z1 = _sample(self.make_rng("sample"), jnp.broadcast_to(m1, (num_samples, *m1.shape)), lv1)
        s, b = z1.shape[:2]
        m2, lv2 = (a.reshape(s, b, -1) for a in self._q_z2(z1.reshape(s * b, -1)))
        z2 = _sample(self.make_rng("sample"), m2, lv2)
        pm1, plv1 = (a.reshape(s, b, -1) for a in self._p_z1(z2.reshape(s * b, -1)))
        log_q = log_normal_diag(z1, m1, lv1) + log_normal_diag(z2, m2, lv2)
        log_p = log_normal_diag(z1, pm1, plv1) + self.log_prior(z2)
        return z1, z2, (m2, lv2), log_q, log_p

    def __call__(self, x: jax.Array, train: bool = False) -> VAEOutput:
        z1, z2, (m2, lv2), log_q, log_p = self._sample_path(x, 1)
        recon = self._p_x(z1[0])
        return VAEOutput(recon, m2[0], lv2[0], z2[0], self.likelihood(), (log_q - log_p)[0])

    def log_weights(self, x: jax.Array, num_samples: int, likelihood: str) -> ImportanceTerms:
        """log w_s = log p(x | z1) + log p(z1 | z2) + log p(z2) - log q(z1 | x) - log q(z2 | z1), [S, B]."""
        z1, _, _, log_q, log_p = self._sample_path(x, num_samples)
        log_px = decoded_log_likelihood(self._p_x, z1, x, likelihood, self.likelihood())
        return ImportanceTerms(log_px, log_p, log_q)
