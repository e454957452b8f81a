"""Model parts and the registry: shapes, architecture, errors; the linear-AE/PCA claim."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.linalg import subspace_angles

from experiments import beta_vae, common
from vae_jax import objectives
from vae_jax.models import (
    Autoencoder,
    ConvDecoder,
    ConvEncoder,
    MLPDecoder,
    MLPEncoder,
    RecurrentDecoder,
    RecurrentEncoder,
    build_model,
    num_params,
)

RNGS = {"params": jax.random.key(0), "sample": jax.random.key(1), "vq": jax.random.key(2)}


@pytest.mark.parametrize(
    "encoder,decoder,shape",
    [
        (MLPEncoder(6), MLPDecoder((28, 28, 1)), (28, 28, 1)),
        (ConvEncoder(6, channels=(32, 64)), ConvDecoder((28, 28, 1), channels=(32, 64)), (28, 28, 1)),
        (ConvEncoder(6), ConvDecoder((64, 64, 1)), (64, 64, 1)),
        (RecurrentEncoder(6, 16), RecurrentDecoder((12, 3), 16), (12, 3)),
        (RecurrentEncoder(6, 16, "gru"), RecurrentDecoder((12, 3), 16, "gru"), (12, 3)),
    ],
)
def test_parts_compose_into_an_autoencoder(encoder, decoder, shape):
    model = Autoencoder(encoder, decoder)
    x = jnp.ones((3, *shape))
    out, _ = model.init_with_output(RNGS, x)
    assert out.z.shape == (3, 6)
    assert out.recon.shape == x.shape


def test_dsprites_architecture_is_locatello_table_1():
    model = build_model(beta_vae.get_config(), (64, 64, 1))
    params = model.init(RNGS, jnp.zeros((1, 64, 64, 1)))["params"]
    enc, dec = params["encoder"], params["decoder"]
    assert [enc[f"Conv_{i}"]["kernel"].shape for i in range(4)] == [
        (4, 4, 1, 32), (4, 4, 32, 32), (4, 4, 32, 64), (4, 4, 64, 64)
    ]  # fmt: skip
    assert enc["Dense_0"]["kernel"].shape == (4 * 4 * 64, 256)
    assert enc["Dense_1"]["kernel"].shape == (256, 20)  # mean and log-variance of 10 latents
    assert dec["Dense_0"]["kernel"].shape == (10, 256)
    assert dec["Dense_1"]["kernel"].shape == (256, 1024)
    assert [dec[f"ConvTranspose_{i}"]["kernel"].shape[-1] for i in range(4)] == [64, 32, 32, 1]


def test_unknown_model_lists_valid_names():
    c = common.base_config()
    c.model.name = "vaee"
    with pytest.raises(ValueError, match=r"'vaee'.*\['ae', 'vae', 'vae2', 'vqvae'\]"):
        build_model(c, (28, 28, 1))


def test_conv_rejects_sizes_it_cannot_halve():
    with pytest.raises(ValueError, match="not divisible"):
        ConvEncoder(4, channels=(8, 8, 8)).init(RNGS, jnp.zeros((1, 28, 28, 1)))


@pytest.mark.slow
def test_vqvae_mlp_and_conv_latent_shapes():
    for encoder, latent in (("conv", (7, 7)), ("mlp", (8,))):
        c = common.base_config()
        c.model.name, c.model.encoder = "vqvae", encoder
        c.model.vq.code_dim = 16
        model = build_model(c, (28, 28, 1))
        out, _ = model.init_with_output(RNGS, jnp.zeros((2, 28, 28, 1)))
        assert out.vq.indices.shape == (2, *latent)
        assert out.recon.shape == (2, 28, 28, 1)


def test_learned_scale_is_a_parameter():
    c = common.base_config()
    c.loss.likelihood, c.loss.learn_scale, c.loss.log_scale = "gaussian", True, -1.0
    model = build_model(c, (28, 28, 1))
    params = model.init(RNGS, jnp.zeros((1, 28, 28, 1)))["params"]
    np.testing.assert_allclose(params["likelihood"]["log_scale"], -1.0)
    assert num_params(params) > 0


def test_linear_autoencoder_spans_the_pca_subspace():
    """Baldi & Hornik 1989: squared-error linear AE on centred data spans the top-k PCs."""
    rng = np.random.default_rng(0)
    d, k, n = 12, 3, 2000
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    scales = np.array([5.0, 4.0, 3.0] + [1.0] * (d - 3)) * np.linspace(1.0, 0.7, d)
    x = (rng.normal(size=(n, d)) * scales) @ basis.T
    x = (x - x.mean(0)).astype(np.float32)
    model = Autoencoder(MLPEncoder(k, hidden=()), MLPDecoder((d,), hidden=()))
    params = model.init(RNGS, x[:1])["params"]
    tx = optax.adam(1e-2)

    def loss_fn(p):
        out = model.apply({"params": p}, x)
        return -jnp.mean(objectives.gaussian_log_likelihood(out.recon, x, 0.0))

    @jax.jit
    def fit(p):
        def body(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, (p, tx.init(p)), None, length=4000)[0][0]

    params = fit(params)
    decoder_span = np.asarray(params["decoder"]["Dense_0"]["kernel"]).T  # [d, k]
    pcs = np.linalg.svd(x, full_matrices=False)[2][:k].T  # [d, k]
    assert np.max(subspace_angles(decoder_span, pcs)) < 0.01


def test_pixelcnn_prior_is_causal():
    from vae_jax.models.code_prior import PixelCNNPrior

    prior = PixelCNNPrior(num_codes=8, features=16, layers=2)
    codes = jnp.zeros((1, 5, 5), jnp.int32)
    params = prior.init(jax.random.key(0), codes)
    base = prior.apply(params, codes)
    changed = prior.apply(params, codes.at[0, 2, 2].set(5))
    moved = np.any(np.abs(np.asarray(changed - base)) > 1e-6, axis=-1)[0]  # [5, 5]
    # Only positions after (2, 2) in raster order may see the change.
    order = np.arange(25).reshape(5, 5)
    assert not moved[order <= 12].any() and moved[order > 12].any()
