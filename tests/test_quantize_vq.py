"""Vector quantizer by behaviour: nearest codes, straight-through, EMA, restart, perplexity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.models import VectorQuantizer


def _init(vq, z):
    return vq.init({"params": jax.random.key(0), "vq": jax.random.key(1)}, z)


def _codebook(variables):
    return variables["vq"]["codebook"] if "vq" in variables else variables["params"]["codebook"]


def test_each_encoding_maps_to_nearest_codeword():
    vq = VectorQuantizer(num_codes=16, code_dim=3)
    z = jax.random.normal(jax.random.key(2), (5, 7, 3))
    variables = _init(vq, z)
    out = jax.jit(lambda v, z: vq.apply(v, z))(variables, z)
    cb = np.asarray(_codebook(variables))
    flat = np.asarray(z).reshape(-1, 3)
    ref = np.argmin(((flat[:, None, :] - cb[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(np.asarray(out.indices).ravel(), ref)
    np.testing.assert_allclose(np.asarray(out.quantized).reshape(-1, 3), cb[ref], atol=1e-6)


def test_straight_through_gradient_reaches_encoder():
    vq = VectorQuantizer(num_codes=8, code_dim=2)
    z = jax.random.normal(jax.random.key(3), (4, 2))
    variables = _init(vq, z)
    w = jax.random.normal(jax.random.key(4), (4, 2))
    grad = jax.grad(lambda z: jnp.sum(vq.apply(variables, z).quantized * w))(z)
    np.testing.assert_allclose(grad, w, rtol=1e-6)  # identity Jacobian through the quantizer


def test_ema_codebook_changes_only_in_training():
    vq = VectorQuantizer(num_codes=8, code_dim=2, ema=True, decay=0.9)
    z = jax.random.normal(jax.random.key(5), (32, 2))
    variables = _init(vq, z)
    assert "codebook" not in variables.get("params", {})  # not learned by gradient
    _, evaluated = vq.apply(variables, z, train=False, mutable=["vq"])
    for k in ("codebook", "ema_count", "ema_sum"):
        np.testing.assert_array_equal(evaluated["vq"][k], variables["vq"][k])
    _, trained = vq.apply(variables, z, train=True, mutable=["vq"], rngs={"vq": jax.random.key(0)})
    assert not np.allclose(trained["vq"]["codebook"], variables["vq"]["codebook"])
    # The EMA update moves used codes towards the mean of their assigned encodings.
    out = vq.apply(variables, z)
    k = int(np.bincount(np.asarray(out.indices), minlength=8).argmax())
    assigned = np.asarray(z)[np.asarray(out.indices) == k].mean(0)
    before = np.linalg.norm(variables["vq"]["codebook"][k] - assigned)
    after = np.linalg.norm(trained["vq"]["codebook"][k] - assigned)
    assert after < before


@pytest.mark.slow
def test_dead_code_is_restarted_from_current_encodings():
    vq = VectorQuantizer(num_codes=4, code_dim=2, ema=True, decay=0.5, restart_threshold=0.5)
    z = jax.random.normal(jax.random.key(6), (64, 2))
    variables = _init(vq, z)
    stats = dict(variables["vq"])
    far = jnp.array([100.0, 100.0])  # code 3 can never be chosen
    stats["codebook"] = stats["codebook"].at[3].set(far)
    stats["ema_sum"] = stats["ema_sum"].at[3].set(far)
    stats["ema_count"] = stats["ema_count"].at[3].set(0.1)  # below threshold after decay
    out, new = vq.apply({"vq": stats}, z, train=True, mutable=["vq"], rngs={"vq": jax.random.key(7)})
    assert 3 not in np.asarray(out.indices)
    revived = np.asarray(new["vq"]["codebook"][3])
    distances = np.linalg.norm(np.asarray(z) - revived, axis=1)
    assert distances.min() < 1e-4  # now equal to one of the batch's encodings
    np.testing.assert_allclose(new["vq"]["ema_count"][3], 1.0)  # EMA statistics reset
    np.testing.assert_allclose(new["vq"]["ema_sum"][3], revived, rtol=1e-3)


def test_perplexity_is_exp_entropy_of_usage():
    vq = VectorQuantizer(num_codes=32, code_dim=4)
    z = jax.random.normal(jax.random.key(8), (200, 4))
    out = vq.apply(_init(vq, z), z)
    counts = np.bincount(np.asarray(out.indices), minlength=32)
    p = counts / counts.sum()
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    np.testing.assert_allclose(out.perplexity, np.exp(entropy), rtol=1e-5)
    np.testing.assert_allclose(out.usage, np.mean(counts > 0), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("options", [{"cosine": True}, {"kmeans_iters": 2}, {"estimator": "rotation"}])
def test_dead_code_restart_works_with_each_codebook_option(options):
    """A code whose EMA count decays below the threshold is re-seeded from the batch's (for cosine
    codes: normalised) encodings, whatever else the codebook does."""
    vq = VectorQuantizer(num_codes=4, code_dim=2, ema=True, decay=0.5, restart_threshold=0.5, **options)
    z = jax.random.normal(jax.random.key(6), (64, 2)) + 3.0  # off the origin: normalising changes it
    variables = _init(vq, z)
    rngs = {"vq": jax.random.key(7)}
    if options.get("kmeans_iters"):  # the first training batch initialises the codebook by k-means
        _, updated = vq.apply(variables, z, train=True, mutable=["vq", "vq_init"], rngs=rngs)
        variables = {**variables, **updated}
    stats = dict(variables["vq"])
    far = jnp.array([-100.0, -100.0])  # code 3 is never chosen (in angle too: opposite the data)
    stats["codebook"], stats["ema_sum"] = stats["codebook"].at[3].set(far), stats["ema_sum"].at[3].set(far)
    stats["ema_count"] = stats["ema_count"].at[3].set(0.1)  # below the threshold after one decay
    _, new = vq.apply({**variables, "vq": stats}, z, train=True, mutable=["vq", "vq_init"], rngs=rngs)
    inputs = np.asarray(z / jnp.linalg.norm(z, axis=-1, keepdims=True) if options.get("cosine") else z)
    revived = np.asarray(new["vq"]["ema_sum"][3])
    assert np.linalg.norm(inputs - revived, axis=1).min() < 1e-4  # one of the batch's encodings
    np.testing.assert_allclose(new["vq"]["ema_count"][3], 1.0)
