"""The one inference path: fixed-size batches, and each answer of `Inference` against the model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import common
from vae_jax.errors import UserError
from vae_jax.evaluate import likelihood
from vae_jax.evaluate.ground_truth import Representation
from vae_jax.evaluate.inference import Inference, map_batches
from vae_jax.models import build_model


def test_map_batches_pads_the_last_batch_and_strips_the_padding():
    shapes, calls = set(), []

    def fn(batch, i):
        x, y = batch
        shapes.add(x.shape)
        calls.append(i)
        return {"sum": x.sum(-1) + y, "first": x[:, 0]}

    x = np.arange(23 * 3, dtype=np.float32).reshape(23, 3)
    y = np.arange(23, dtype=np.float32)
    out = map_batches(fn, (x, y), batch_size=10)
    assert shapes == {(10, 3)} and calls == [0, 1, 2]  # one shape: one compiled program per model
    np.testing.assert_array_equal(out["sum"], x.sum(-1) + y)
    np.testing.assert_array_equal(out["first"], x[:, 0])
    with pytest.raises(ValueError, match="at least one example"):
        map_batches(fn, (x[:0], y[:0]), 10)


def _model(name: str, **model):
    c = common.base_config()
    c.model.update(name=name, encoder="mlp", hidden=(16,), latent_dim=3, **model)
    if name == "vqvae":
        c.model.vq.update(num_codes=8, code_dim=4, num_latents=2, ema=False)
    m = build_model(c, (6,))
    keys = {"params": jax.random.key(0), "sample": jax.random.key(1), "vq": jax.random.key(2)}
    return m, m.init(keys, jnp.zeros((2, 6)))


X = np.random.default_rng(0).random((13, 6)).astype(np.float32)


def test_a_vae_encodes_its_posterior_mean_and_decodes_its_bernoulli_mean():
    model, variables = _model("vae")
    inference = Inference(model, variables, "bernoulli", batch_size=4)
    mean, logvar = model.apply(variables, X, method=model.encode)
    np.testing.assert_allclose(inference.encode(X), mean, rtol=1e-6, atol=1e-6)
    got_mean, got_logvar = inference.posterior(X)
    np.testing.assert_allclose(got_logvar, logvar, rtol=1e-6, atol=1e-6)
    decoded = jax.nn.sigmoid(model.apply(variables, mean, method=model.decode))
    np.testing.assert_allclose(inference.decode(np.asarray(mean)), decoded, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inference.reconstruct(X), decoded, rtol=1e-6, atol=1e-6)
    samples = inference.sample(5, jax.random.key(3))
    z = model.apply(variables, 5, method="sample_prior", rngs={"sample": jax.random.key(3)})
    np.testing.assert_allclose(samples, jax.nn.sigmoid(model.apply(variables, z, method=model.decode)), 1e-6)
    representation = Representation(inference)  # the metrics' view: mean codes and the posterior
    np.testing.assert_allclose(representation.posterior(X)[1], np.exp(logvar), rtol=1e-5)


@pytest.mark.slow
def test_an_autoencoder_and_a_vq_vae_encode_their_codes_and_have_no_prior():
    model, variables = _model("ae")
    ae = Inference(model, variables, "gaussian", batch_size=4)
    np.testing.assert_allclose(ae.encode(X), model.apply(variables, X, method=model.encode), rtol=1e-6)
    np.testing.assert_allclose(
        ae.reconstruct(X), model.apply(variables, X).recon, rtol=1e-6
    )  # Gaussian: the mean
    with pytest.raises(UserError, match="no prior to sample"):
        ae.sample(2, jax.random.key(0))
    with pytest.raises(UserError, match="no Gaussian posterior"):
        ae.posterior(X)
    model, variables = _model("vqvae")
    vq = Inference(model, variables, "gaussian", batch_size=4)
    codes = vq.encode(X)
    out = model.apply(variables, X)
    np.testing.assert_array_equal(codes, out.vq.indices)  # [N, positions]: indices, not z_e
    np.testing.assert_allclose(vq.decode(codes), out.recon, rtol=1e-5, atol=1e-6)  # code indices decode
    np.testing.assert_allclose(vq.latent(X), out.z_e, rtol=1e-6)


def test_the_bound_from_the_eval_pass_posterior_equals_the_bound_that_encodes():
    model, variables = _model("vae")
    binary = (X > 0.5).astype(np.float32)
    posterior = Inference(model, variables, "bernoulli").posterior(binary)
    key = jax.random.key(4)
    own = likelihood.iwae_per_example(model, variables, binary, "bernoulli", 10, 4, key)
    given = likelihood.iwae_per_example(
        model, variables, binary, "bernoulli", 10, 4, key, posterior=posterior
    )
    np.testing.assert_allclose(given, own, rtol=1e-5)
    assert own.shape == (13,)
    other = likelihood.iwae_per_example(
        model, variables, binary, "bernoulli", 10, 4, key, posterior=(posterior[0] + 3, posterior[1])
    )
    assert other.mean() < own.mean() - 1  # the given posterior is the proposal: a worse one, a lower bound


@pytest.mark.slow
def test_the_final_evaluation_encodes_the_eval_set_once(tmp_path, idx_dir, tfds_dir, monkeypatch):
    """The eval step's pass is the only one over the eval set: the likelihood bound reuses its
    posterior, the pictures encode a handful of examples only."""
    from tests.helpers import load_config, use_local_idx
    from vae_jax.train import train_and_evaluate

    encoded = []
    for name in ("posterior", "latent"):
        method = getattr(Inference, name)
        monkeypatch.setattr(Inference, name, lambda self, x, m=method: encoded.append(len(x)) or m(self, x))
    config = use_local_idx(load_config("vae", "smoke"), idx_dir, tfds_dir)
    config.eval.every = 10**6  # the final evaluation only
    results = train_and_evaluate(config, tmp_path)
    assert results["iwae_nll"] > 0 and results["active_units"] >= 0
    assert sum(encoded) < 100 / 4, encoded  # the eval set has 100 images
