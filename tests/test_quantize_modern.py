"""FSQ, residual VQ, the rotation trick, k-means init, cosine codes and projections, by behaviour."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import common
from vae_jax.errors import ConfigError
from vae_jax.evaluate.codebook import codebook_health
from vae_jax.models import FSQ, ProjectedQuantizer, ResidualVQ, VectorQuantizer, build_quantizer
from vae_jax.models.quantize import fsq as fsq_lib
from vae_jax.models.quantize.estimators import rotation_trick
from vae_jax.train.validate import validate_config

RNGS = {"params": jax.random.key(0), "vq": jax.random.key(1)}


def _mse(out):
    return float(jnp.mean(jnp.sum((out.inputs - out.codewords) ** 2, -1)))


def test_fsq_codes_lie_on_the_level_grid_and_indices_round_trip():
    levels = (8, 5, 4, 3)
    z = 3.0 * jax.random.normal(jax.random.key(0), (4000, 4))
    out = jax.jit(lambda z: FSQ(levels).apply({}, z))(z)
    half = np.array(levels) // 2
    digits = np.asarray(out.quantized) * half  # integers in [-(L//2), L - 1 - L//2]
    np.testing.assert_allclose(digits, np.round(digits), atol=1e-5)
    for i, n in enumerate(levels):
        assert set(np.round(digits[:, i]).astype(int)) == set(range(-half[i], n - half[i]))  # all L values
    every = jnp.arange(int(np.prod(levels)))
    codes = fsq_lib.indices_to_codes(every, levels)
    np.testing.assert_array_equal(fsq_lib.codes_to_indices(codes, levels), every)
    assert len({tuple(c) for c in np.asarray(codes).round(4)}) == len(every)  # distinct codes
    np.testing.assert_allclose(FSQ(levels).apply({}, out.indices, method="lookup"), out.quantized, atol=1e-6)
    assert out.codewords is None  # no codebook, so no codebook or commitment loss


def test_fsq_gradient_is_straight_through_of_the_bound():
    levels = (7, 4)
    z = jax.random.normal(jax.random.key(1), (16, 2))
    w = jax.random.normal(jax.random.key(2), (16, 2))
    grad = jax.grad(lambda z: jnp.sum(fsq_lib.quantize(z, levels) * w))(z)
    lv = np.array(levels, np.float64)
    h = (lv - 1) * (1 - 1e-3) / 2
    shift = np.tan(np.where(lv % 2 == 0, 0.5, 0.0) / h)
    ref = np.asarray(w) * (1 - np.tanh(np.asarray(z) + shift) ** 2) * h / (lv // 2)
    np.testing.assert_allclose(grad, ref, rtol=1e-4, atol=1e-6)


def test_fsq_recommended_levels_and_config():
    for size, levels in fsq_lib.RECOMMENDED_LEVELS.items():
        assert 0.9 < np.prod(levels) / size < 1.1, (size, levels)
    vq = common.base_config().model.vq
    vq.kind, vq.num_codes = "fsq", 1024
    quantizer = build_quantizer(vq)
    assert isinstance(quantizer, FSQ) and quantizer.levels == (8, 5, 5, 5) and quantizer.codebook_size == 1000


def test_rotation_trick_forward_is_the_code_and_gradient_follows_the_rotation():
    z = jax.random.normal(jax.random.key(3), (6, 5))
    q = jax.random.normal(jax.random.key(4), (6, 5))
    w = jax.random.normal(jax.random.key(5), (6, 5))
    np.testing.assert_allclose(jax.jit(rotation_trick)(z, q), q, atol=1e-6)
    grad = jax.grad(lambda z: jnp.sum(rotation_trick(z, q) * w))(z)
    for e, c, g, gw in zip(*(np.asarray(a, np.float64) for a in (z, q, grad, w)), strict=True):
        e_hat, q_hat = e / np.linalg.norm(e), c / np.linalg.norm(c)
        r = (e_hat + q_hat) / np.linalg.norm(e_hat + q_hat)
        rot = np.eye(5) - 2 * np.outer(r, r) + 2 * np.outer(q_hat, e_hat)
        np.testing.assert_allclose(rot @ e_hat, q_hat, atol=1e-10)  # R takes e_hat to q_hat
        ref = np.linalg.norm(c) / np.linalg.norm(e) * rot.T @ gw  # d(lambda R e . w)/de
        np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-5)
        assert not np.allclose(g, gw, atol=1e-3)  # not straight-through's identity


def test_rotation_and_straight_through_quantizers_agree_forward():
    z = jax.random.normal(jax.random.key(6), (4, 7, 3))
    st, rot = (VectorQuantizer(16, 3, estimator=e) for e in ("straight_through", "rotation"))
    variables = st.init(RNGS, z)
    a, b = st.apply(variables, z), rot.apply(variables, z)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.quantized, b.quantized, atol=1e-6)
    ga = jax.grad(lambda z: jnp.sum(st.apply(variables, z).quantized ** 2))(z)
    gb = jax.grad(lambda z: jnp.sum(rot.apply(variables, z).quantized ** 2))(z)
    assert np.all(np.isfinite(gb)) and not np.allclose(ga, gb, atol=1e-3)


@pytest.mark.parametrize("ema", [False, True])
def test_kmeans_init_lowers_first_batch_error_and_runs_once(ema):
    # Clustered encodings far from the random initial codebook.
    centres = 4.0 * jax.random.normal(jax.random.key(7), (8, 4))
    z = centres[jax.random.randint(jax.random.key(8), (512,), 0, 8)] + 0.1 * jax.random.normal(
        jax.random.key(9), (512, 4)
    )
    errors = {}
    for iters in (0, 5):
        vq = VectorQuantizer(16, 4, ema=ema, kmeans_iters=iters)
        variables = vq.init(RNGS, z)
        out, state = vq.apply(variables, z, train=True, mutable=["vq", "vq_init"], rngs=RNGS)
        errors[iters] = _mse(out)
    assert errors[5] < 0.2 * errors[0], errors
    assert bool(state["vq_init"]["done"])
    # The second batch keeps the k-means codebook (the EMA moves it only slightly).
    variables = {**variables, **state}
    out2, _ = vq.apply(variables, z, train=True, mutable=["vq", "vq_init"], rngs={"vq": jax.random.key(5)})
    assert _mse(out2) < 2 * errors[5] + 1e-3
    # The stored codebook is the one the first batch was quantized with (the EMA then moved it a little).
    atol = 0.1 if ema else 1e-5
    np.testing.assert_allclose(vq.apply(variables, out.indices, method="lookup"), out.codewords, atol=atol)


def test_cosine_codes_are_unit_and_match_by_cosine():
    vq = VectorQuantizer(12, 3, cosine=True)
    z = 5.0 * jax.random.normal(jax.random.key(10), (40, 3))
    variables = vq.init(RNGS, z)
    out = vq.apply(variables, z)
    np.testing.assert_allclose(np.linalg.norm(out.quantized, axis=-1), 1.0, rtol=1e-5)
    cb = np.asarray(variables["params"]["codebook"])
    cos = (np.asarray(z) @ cb.T) / np.linalg.norm(z, axis=1)[:, None] / np.linalg.norm(cb, axis=1)
    np.testing.assert_array_equal(out.indices, cos.argmax(1))


def test_projection_quantizes_in_the_low_dimensional_space():
    pq = ProjectedQuantizer(VectorQuantizer(8, 2), width=6)
    z = jax.random.normal(jax.random.key(11), (5, 3, 6))
    variables = pq.init(RNGS, z)
    out = pq.apply(variables, z)
    assert out.quantized.shape == (5, 3, 6) and out.inputs.shape == out.codewords.shape == (5, 3, 2)
    np.testing.assert_allclose(pq.apply(variables, out.indices, method="lookup"), out.quantized, atol=1e-5)


def _rvq(levels, ema=False, dropout=False, kmeans=3):
    return ResidualVQ(VectorQuantizer(16, 4, ema=ema, kmeans_iters=kmeans), levels, dropout)


@pytest.mark.slow
def test_residual_levels_reconstruct_better_and_each_codebook_learns():
    z = jax.random.normal(jax.random.key(12), (256, 4))
    rvq = _rvq(4)
    variables = rvq.init(RNGS, z)
    out, _ = rvq.apply(variables, z, train=True, mutable=["vq_init"], rngs=RNGS)
    partial = np.cumsum(np.asarray(out.codewords), axis=-2)  # [B, N, D]: the first n levels' sum
    errors = [np.mean(np.sum((np.asarray(z) - partial[:, n]) ** 2, -1)) for n in range(4)]
    assert all(b <= a for a, b in itertools.pairwise(errors)) and errors[-1] < 0.5 * errors[0], errors
    assert out.indices.shape == (256, 4) and out.level_usage.shape == (4,)

    # Codebook loss: every level's codebook gets a gradient.
    def codebook_loss(params):
        o = rvq.apply({**variables, "params": params}, z)
        return jnp.sum((jax.lax.stop_gradient(o.inputs) - o.codewords) ** 2)

    grads = jax.grad(codebook_loss)(variables["params"])
    assert sorted(grads) == [f"levels_{n}" for n in range(4)]
    assert all(float(jnp.abs(g["codebook"]).sum()) > 0 for g in grads.values())
    # EMA codebooks: every level's moves in training.
    ema = _rvq(3, ema=True, kmeans=0)
    ema_vars = ema.init(RNGS, z)
    _, new = ema.apply(ema_vars, z, train=True, mutable=["vq"], rngs=RNGS)
    for n in range(3):
        assert not np.allclose(
            new["vq"][f"levels_{n}"]["codebook"], ema_vars["vq"][f"levels_{n}"]["codebook"]
        )


def test_quantizer_dropout_keeps_a_prefix_of_levels_in_training_only():
    z = jax.random.normal(jax.random.key(13), (64, 4))
    rvq = _rvq(4, dropout=True, kmeans=0)
    variables = rvq.init(RNGS, z)
    out = rvq.apply(variables, z, train=True, rngs=RNGS)
    kept = np.any(np.asarray(out.codewords) != 0, axis=-1).sum(-1)  # [B] levels used per example
    assert set(kept) == {1, 2, 3, 4}
    full = rvq.apply(variables, z)
    for b in range(8):
        ref = np.asarray(full.codewords)[b, : kept[b]].sum(0)
        np.testing.assert_allclose(out.quantized[b], ref, atol=1e-5)
    assert np.all(np.any(np.asarray(full.codewords) != 0, axis=-1))  # eval: all levels


def test_codebook_health_per_level_matches_numpy():
    indices = np.random.default_rng(0).integers(0, 5, (30, 7, 2))
    indices[..., 1] = 3
    health = codebook_health(indices, 8)
    counts = np.bincount(indices[..., 0].ravel(), minlength=8)
    p = counts[counts > 0] / counts.sum()
    np.testing.assert_allclose(health["perplexity_level0"], np.exp(-np.sum(p * np.log(p))), rtol=1e-6)
    assert health["codebook_usage_level0"] == 5 / 8 and health["codebook_usage_level1"] == 1 / 8
    assert health["perplexity_level1"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"kind": "pq"}, "model.vq.kind='pq'"),
        ({"kind": "fsq", "num_codes": 1024, "ema": True}, "FSQ has no codebook"),
        ({"kind": "fsq", "num_codes": 500}, "model.vq.num_codes=500"),
        ({"kind": "rvq", "cosine": True}, "model.vq.cosine=True"),
        ({"estimator": "gumbel"}, "model.vq.estimator='gumbel'"),
        ({"encoder_dim": 8, "code_dim": 16}, "model.vq.encoder_dim=8"),
        ({"dropout": True}, "model.vq.dropout=True"),
    ],
)
def test_bad_quantizer_fields_raise_config_error(fields, message):
    c = common.base_config()
    c.model.name = "vqvae"
    c.model.vq.update(fields)
    with pytest.raises(ConfigError, match=message):
        validate_config(c)


@pytest.mark.parametrize("kind", ["fsq", "rvq"])
@pytest.mark.parametrize("network", ["mlp", "recurrent"])
def test_fsq_and_rvq_train_in_mlp_and_recurrent_vq_models(network, kind, idx_dir, tfds_dir):
    """The quantizers are parts any VQ-VAE takes: the MLP one on images, the LSTM seq2seq on sequences."""
    from tests.helpers import load_config, use_local_idx
    from vae_jax.train import engine, validate_config
    from vae_jax.train.steps import make_train_step

    if network == "recurrent":
        config = load_config("seq2seq_ae", "smoke")
        config.model.name = "vqvae"
    else:
        config = use_local_idx(load_config("vq_vae", "smoke"), idx_dir, tfds_dir)
        config.model.encoder, config.model.hidden = "mlp", (32,)
    config.model.vq.kind, config.model.vq.num_levels = kind, 2
    if kind == "fsq":
        config.model.vq.num_codes = 256  # the paper's level set for 2^8 codes: (8, 6, 5)
        config.model.vq.ema, config.model.vq.restart_threshold = False, 0.0  # no codebook to update
        config.model.vq.encoder_dim = 8  # the encoder's width, projected to the FSQ levels
    validate_config(config)
    dataset, model, _, state = engine.setup(config)
    step = jax.jit(make_train_step(config.loss.likelihood, config.data.binarize))
    for i in range(2):
        state, metrics = step(state, jnp.asarray(dataset.eval_images[:8]), jax.random.key(i))
    assert float(metrics["finite"]) == 1.0 and np.isfinite(float(metrics["loss"]))
    assert metrics["code_counts"].ndim == (2 if kind == "rvq" else 1)
