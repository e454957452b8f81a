"""The two-stochastic-layer VAE's L_k against numpy quadrature, tanh MLPs, Burda's schedule, config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from experiments import common
from tests.helpers import load_config
from vae_jax.evaluate import likelihood
from vae_jax.models import MLPEncoder, TwoLayerVAE, build_model
from vae_jax.train import ConfigError, validate_config
from vae_jax.train.optimizer import burda_boundaries, make_optimizer


def _two_layer(activation="tanh"):
    c = common.base_config()
    c.model.update(name="vae2", hidden=(3,), latent_dim=1, bottom_hidden=(4,), bottom_latent_dim=1)
    c.model.activation = activation
    model = build_model(c, (3,))
    variables = model.init({"params": jax.random.key(5), "sample": jax.random.key(6)}, jnp.zeros((2, 3)))
    return model, jax.tree.map(lambda p: np.array(p, np.float64), variables["params"])


def _np_mlp(params: dict, h: np.ndarray) -> np.ndarray:
    """numpy forward of an MLPEncoder / MLPDecoder: Dense_0..n with tanh between them."""
    names = sorted(params, key=lambda n: int(n.split("_")[1]))
    for i, name in enumerate(names):
        h = h @ params[name]["kernel"] + params[name]["bias"]
        h = np.tanh(h) if i < len(names) - 1 else h
    return h


def _np_log_normal(z, mean, logvar):
    return -0.5 * (np.log(2 * np.pi) + logvar + (z - mean) ** 2 * np.exp(-logvar))


def _np_log_px(params, x):
    """log p(x) = log int int p(x | z1) p(z1 | z2) p(z2) dz1 dz2 by quadrature on a 2-D grid."""
    grid = np.linspace(-9, 9, 721)
    dz = grid[1] - grid[0]
    z2 = grid[:, None]  # [G, 1]
    p_z1 = _np_mlp(params["top_decoder"], z2)  # [G, 2]: mean, logvar of p(z1 | z2)
    log_z1_given_z2 = _np_log_normal(grid[None, :], p_z1[:, :1], p_z1[:, 1:])  # [G(z2), G(z1)]
    logits = _np_mlp(params["decoder"], grid[:, None])  # [G(z1), 3]
    log_x_given_z1 = (x[:, None, :] * logits - np.logaddexp(0, logits)).sum(-1)  # [B, G(z1)]
    log_joint = log_x_given_z1[:, None, :] + log_z1_given_z2[None] + _np_log_normal(z2, 0, 0)[None]
    return special.logsumexp(log_joint, axis=(1, 2)) + 2 * np.log(dz)


def _wide_proposals(params: dict) -> dict:
    """q(z1 | x), q(z2 | z1) with standard deviation 2 (means still the networks'): the importance
    weights then have finite variance, so L_k approaches log p(x) at a k a test can afford."""
    for name in ("encoder", "top_encoder"):
        last = params[name]["Dense_1"]
        last["kernel"][:, 1:] = 0.0
        last["bias"][1:] = np.log(4.0)
    return params


@pytest.mark.slow
def test_two_layer_lk_matches_numpy_quadrature_of_log_px():
    model, params = _two_layer()
    params = _wide_proposals(params)
    x = np.array([[0, 0, 0], [1, 0, 1], [1, 1, 1], [0, 1, 0]], np.float32)
    exact = _np_log_px(params, x)
    variables = {"params": jax.tree.map(jnp.float32, params)}
    lk = {
        k: likelihood.iwae_per_example(model, variables, x, "bernoulli", k, 4, jax.random.key(k))
        for k in (1, 20_000)
    }
    np.testing.assert_allclose(lk[20_000], exact, atol=0.02)  # k = 20,000: the bound is all but tight
    copies = np.tile(x, (500, 1))  # L_1 of 500 copies of each image: the ELBO's average over draws
    elbo = likelihood.iwae_per_example(model, variables, copies, "bernoulli", 1, 2000, jax.random.key(0))
    gap = exact - elbo.reshape(500, 4).mean(0)
    assert np.all(gap > 0.05), gap  # while L_1 (the ELBO) is clearly below log p(x)
    assert isinstance(model, TwoLayerVAE) and lk[1].shape == (4,)


@pytest.mark.slow
def test_two_layer_forward_and_pictures_interface():
    model, params = _two_layer()
    variables = {"params": params}
    x = jnp.ones((5, 3))
    out = model.apply(variables, x, rngs={"sample": jax.random.key(0)})
    assert out.recon.shape == (5, 3) and out.kl_sample.shape == (5,) and out.mean.shape == (5, 1)
    assert model.apply(variables, jnp.zeros((5, 1)), method=model.decode).shape == (5, 3)
    terms = model.apply(
        variables, x, 7, "bernoulli", method="log_weights", rngs={"sample": jax.random.key(1)}
    )
    assert terms.log_w.shape == (7, 5) and np.all(np.isfinite(terms.log_w))


def test_tanh_activation_is_the_numpy_tanh_mlp():
    x = jnp.linspace(-2, 2, 15).reshape(5, 3)
    tanh, relu = MLPEncoder(2, (4,), "tanh"), MLPEncoder(2, (4,), "relu")
    params = tanh.init(jax.random.key(0), x)["params"]
    ref = _np_mlp(jax.tree.map(lambda p: np.asarray(p, np.float64), params), np.asarray(x, np.float64))
    np.testing.assert_allclose(tanh.apply({"params": params}, x), ref, rtol=1e-5, atol=1e-6)
    assert not np.allclose(relu.apply({"params": params}, x), ref, atol=1e-3)


def test_burda_schedule_stages_and_learning_rates():
    assert burda_boundaries(3000, 8) == list(np.cumsum([3**i * 3000 for i in range(8)]))
    c = load_config("iwae")
    assert c.train.num_steps == 3280 * 3000 == burda_boundaries(3000, 8)[-1]
    assert (c.train.batch_size, c.data.binarize, c.optim.kwargs.eps) == (20, "dynamic", 1e-4)
    c.optim.stage0_steps = 2
    tx = make_optimizer(c.optim)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    sizes = []
    for _ in range(2 + 6 + 18 + 1):  # stages 0, 1, 2 and the first step of stage 3
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        sizes.append(-float(updates["w"]))  # Adam's first steps move by lr exactly for a constant gradient
    expected = [1e-3 * 10 ** (-i / 7) for i in (0,) * 2 + (1,) * 6 + (2,) * 18 + (3,)]
    np.testing.assert_allclose(sizes, expected, rtol=2e-4)  # eps = 1e-4 against |g| = 1


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("loss.objective", "iwea", "config.loss.objective='iwea' is invalid"),
        ("loss.num_samples", 0, "config.loss.num_samples=0 is invalid"),
        ("loss.ciwae_beta", 1.5, "config.loss.ciwae_beta=1.5 is invalid"),
        ("loss.beta", 4.0, "config.loss.beta=4.0 is invalid: must be 1.0 with loss.objective='iwae'"),
        ("model.prior", "vampp", "config.model.prior='vampp' is invalid"),
        ("model.activation", "gelu", "config.model.activation='gelu' is invalid"),
        ("optim.schedule", "cosine", "config.optim.schedule='cosine' is invalid"),
    ],
)
def test_bad_iw_fields_are_config_errors(field, value, message):
    c = load_config("iwae", "smoke")
    group, name = field.split(".")
    c[group][name] = value
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate_config(c)
