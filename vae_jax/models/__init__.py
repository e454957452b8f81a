"""Flax models and the registry from `config.model.name` to constructors.

`config.model.dtype` (one of DTYPES) is the networks' computation dtype, flax's convention:
parameters are float32 in every dtype, and the models cast their networks' outputs to float32
(`vae_jax.models.autoencoders`), so losses and metrics are float32 sums.
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from vae_jax.errors import ConfigError
from vae_jax.models.autoencoders import (
    PRIORS,
    VAE,
    VQVAE,
    AEOutput,
    Autoencoder,
    ImportanceTerms,
    VAEOutput,
    VQVAEOutput,
)
from vae_jax.models.conv import ConvDecoder, ConvEncoder, num_params
from vae_jax.models.mlp import ACTIVATIONS, MLPDecoder, MLPEncoder
from vae_jax.models.quantize import (
    FSQ,
    ProjectedQuantizer,
    ResidualVQ,
    VectorQuantizer,
    VQOutput,
    build_quantizer,
    encoder_width,
)
from vae_jax.models.recurrent import RecurrentDecoder, RecurrentEncoder
from vae_jax.models.two_layer import TwoLayerVAE

__all__ = [
    "ACTIVATIONS",
    "AEOutput",
    "Autoencoder",
    "ConvDecoder",
    "ConvEncoder",
    "DTYPES",
    "FSQ",
    "ImportanceTerms",
    "MLPDecoder",
    "MLPEncoder",
    "MODELS",
    "NETWORKS",
    "PRIORS",
    "ProjectedQuantizer",
    "RecurrentDecoder",
    "RecurrentEncoder",
    "ResidualVQ",
    "TwoLayerVAE",
    "VAE",
    "VAEOutput",
    "VQOutput",
    "VQVAE",
    "VQVAEOutput",
    "VectorQuantizer",
    "build_model",
    "build_quantizer",
    "compute_dtype",
    "num_params",
]

NETWORKS = ("mlp", "conv", "recurrent")
DTYPES = ("float32", "bfloat16")  # config.model.dtype


def compute_dtype(cfg: ml_collections.ConfigDict) -> jnp.dtype:
    """The networks' dtype, `cfg.dtype` of config.model (float32 for configs written before it)."""
    return jnp.dtype(cfg.get("dtype", "float32"))


def _encoder(cfg: ml_collections.ConfigDict, out_dim: int, spatial: bool = False) -> nn.Module:
    kind, dtype = cfg.encoder, compute_dtype(cfg)
    if kind == "mlp":
        return MLPEncoder(out_dim, hidden=tuple(cfg.hidden), activation=cfg.activation, dtype=dtype)
    if kind == "conv":
        channels = tuple(cfg.channels)
        return ConvEncoder(out_dim, channels, cfg.kernel, cfg.dense, spatial, cfg.conv_impl, dtype)
    if kind == "recurrent":
        return RecurrentEncoder(out_dim, cfg.rnn_hidden, cfg.cell, dtype)
    raise ConfigError(f"model.encoder={kind!r} is not known; valid: {list(NETWORKS)}")


def _decoder(cfg: ml_collections.ConfigDict, data_shape: Sequence[int], spatial=False) -> nn.Module:
    kind, dtype = cfg.decoder or cfg.encoder, compute_dtype(cfg)
    shape = tuple(data_shape)
    if kind == "mlp":
        return MLPDecoder(shape, tuple(reversed(tuple(cfg.hidden))), cfg.activation, dtype)
    if kind == "conv":
        channels = tuple(cfg.channels)
        return ConvDecoder(shape, channels, cfg.kernel, cfg.dense, spatial, cfg.conv_impl, dtype)
    if kind == "recurrent":
        return RecurrentDecoder(shape, cfg.rnn_hidden, cfg.cell, dtype)
    raise ConfigError(f"model.decoder={kind!r} is not known; valid: {list(NETWORKS)}")


def _scale_kwargs(loss_cfg: ml_collections.ConfigDict) -> dict:
    return {"learn_scale": bool(loss_cfg.learn_scale), "fixed_log_scale": float(loss_cfg.log_scale)}


def _ae(cfg, loss_cfg, data_shape) -> nn.Module:
    enc = _encoder(cfg, cfg.latent_dim)
    return Autoencoder(enc, _decoder(cfg, data_shape), **_scale_kwargs(loss_cfg))


def _vae(cfg, loss_cfg, data_shape) -> nn.Module:
    enc = _encoder(cfg, 2 * cfg.latent_dim)
    prior = {"prior": cfg.prior, "num_pseudo_inputs": cfg.num_pseudo_inputs, "data_shape": data_shape}
    return VAE(enc, _decoder(cfg, data_shape), cfg.latent_dim, **_scale_kwargs(loss_cfg), **prior)


def _vae2(cfg, loss_cfg, data_shape) -> nn.Module:
    """Burda et al.'s two stochastic layers: model.bottom_hidden around z1, model.hidden around z2."""
    d1, act, dtype = cfg.bottom_latent_dim, cfg.activation, compute_dtype(cfg)
    bottom_hidden = tuple(cfg.bottom_hidden)
    top_hidden = tuple(cfg.hidden)
    return TwoLayerVAE(
        encoder=MLPEncoder(2 * d1, bottom_hidden, act, dtype),
        decoder=MLPDecoder(tuple(data_shape), tuple(reversed(bottom_hidden)), act, dtype),
        latent_dim=cfg.latent_dim,
        **_scale_kwargs(loss_cfg),
        top_encoder=MLPEncoder(2 * cfg.latent_dim, top_hidden, act, dtype),
        top_decoder=MLPEncoder(2 * d1, tuple(reversed(top_hidden)), act, dtype),
        bottom_latent_dim=d1,
    )


def _vqvae(cfg, loss_cfg, data_shape) -> nn.Module:
    vq = cfg.vq
    quantizer = build_quantizer(vq, compute_dtype(cfg))
    width = encoder_width(vq)
    spatial = cfg.encoder == "conv"
    if spatial:
        enc = _encoder(cfg, width, spatial=True)
        latent_shape = ()
    else:  # A flat encoder emits num_latents codes of `width` channels.
        enc = _encoder(cfg, vq.num_latents * width)
        latent_shape = (vq.num_latents, width)
    dec = _decoder(cfg, data_shape, spatial=spatial)
    return VQVAE(enc, dec, quantizer, latent_shape, **_scale_kwargs(loss_cfg))


MODELS: dict[str, Callable[..., nn.Module]] = {"ae": _ae, "vae": _vae, "vae2": _vae2, "vqvae": _vqvae}


def build_model(config: ml_collections.ConfigDict, data_shape: Sequence[int]) -> nn.Module:
    """Builds `config.model.name` for examples of shape `data_shape` (without batch axis)."""
    name = config.model.name
    if name not in MODELS:
        raise ConfigError(f"model.name={name!r} is not a known model; valid: {sorted(MODELS)}")
    return MODELS[name](config.model, config.loss, tuple(data_shape))
