"""FactorVAE: the discriminator learns dependence, gamma * TC trains the encoder only, the
two-network state checkpoints and resumes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import small_config
from vae_jax.models import build_model
from vae_jax.objectives import disentangle as dis
from vae_jax.train import checkpoint
from vae_jax.train.losses import apply_model
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import discriminator_update, make_train_step

SHAPE = (28, 28, 1)


def factor_config(gamma=10.0, latent_dim=4):
    c = small_config("vae")
    c.loss.method, c.loss.factor_gamma = "factor_vae", gamma
    c.model.latent_dim, c.model.disc_hidden = latent_dim, (64, 64)
    c.model.encoder, c.model.hidden = "mlp", (64,)  # compiles in a fraction of the conv net's time
    return c


def _state(config, seed=0):
    return create_train_state(build_model(config, SHAPE), config, SHAPE, jax.random.key(seed))


def _gaussian_pair(rng, n, rho):
    """[n, 2] samples of a bivariate normal with correlation rho: TC = -0.5 log(1 - rho^2)."""
    a, b = jax.random.normal(rng, (2, n))
    return jnp.stack([a, rho * a + np.sqrt(1 - rho**2) * b], axis=1)


def _train_discriminator(rho, steps=300):
    config = factor_config(latent_dim=2)
    config.optim.discriminator.learning_rate = 1e-3  # dlib's 1e-4 needs ~10x the steps
    state = _state(config)

    @jax.jit
    def train(disc):
        def body(i, disc):
            data_rng, perm_rng = jax.random.split(jax.random.fold_in(jax.random.key(0), i))
            z = _gaussian_pair(data_rng, 256, rho)
            return discriminator_update(state.replace(disc=disc), z, perm_rng)[0]

        return jax.lax.fori_loop(0, steps, body, disc)

    state = state.replace(disc=train(state.disc))
    z = _gaussian_pair(jax.random.key(1), 8192, rho)  # fresh samples: accuracy out of sample
    logits = state.disc_apply_fn({"params": state.disc["params"]}, jnp.asarray(z))
    logits_perm = state.disc_apply_fn(
        {"params": state.disc["params"]}, dis.permute_dims(z, jax.random.key(-1))
    )
    _, metrics = dis.discriminator_loss(logits, logits_perm)
    return float(metrics["disc_accuracy"]), float(jnp.mean(logits[:, 0] - logits[:, 1]))


def test_discriminator_tells_a_dependent_pair_from_its_permutation():
    accuracy, tc = _train_discriminator(rho=0.9)
    assert accuracy > 0.62, accuracy  # chance is 0.5
    assert 0.4 < tc < 1.4, tc  # the density-ratio estimate of TC = 0.83 nats
    accuracy, tc = _train_discriminator(rho=0.0)  # independent: nothing to tell apart
    assert 0.44 < accuracy < 0.56 and abs(tc) < 0.15, (accuracy, tc)


def _flat(tree):
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.slow
def test_gamma_tc_gradient_reaches_the_encoder_only():
    config = factor_config()
    state = _state(config)
    x = jnp.asarray(np.random.default_rng(1).random((16, *SHAPE)), jnp.float32)

    def tc_term(params):
        out, _ = apply_model(state, params, x, jax.random.key(2), train=True)
        logits = state.disc_apply_fn({"params": state.disc["params"]}, out.z)
        return dis.factor_vae_loss(jnp.zeros(16), jnp.zeros(16), logits, 1.0)[1]["tc"]

    grads = _flat(jax.grad(tc_term)(state.params))
    assert all(not np.any(g) for k, g in grads.items() if "decoder" in k)
    assert any(np.any(g) for k, g in grads.items() if "encoder" in k)
    assert any("decoder" in k for k in grads)

    # One train step at gamma = 0 and at gamma = 50 from the same state, batch and rng.
    step = jax.jit(make_train_step(config.loss.likelihood))
    after = {}
    for gamma in (0.0, 50.0):
        hparams = {**state.hparams, "factor_gamma": jnp.float32(gamma)}
        new, metrics = step(state.replace(hparams=hparams), x, jax.random.key(3))
        assert metrics["finite"] == 1 and np.isfinite(metrics["disc_loss"])
        after[gamma] = (_flat(new.params), _flat(new.disc))
    (p0, d0), (p50, d50) = after[0.0], after[50.0]
    assert all(np.array_equal(p0[k], p50[k]) for k in p0 if "decoder" in k)
    assert any(not np.allclose(p0[k], p50[k]) for k in p0 if "encoder" in k)
    # The discriminator is trained by its own loss only: gamma (the VAE loss) leaves it unchanged,
    assert all(np.array_equal(d0[k], d50[k]) for k in d0)
    # and it was trained.
    assert any(not np.array_equal(d0[k], v) for k, v in _flat(state.disc).items())


def test_two_network_state_checkpoints_and_resumes(tmp_path):
    config = factor_config()
    step = jax.jit(make_train_step(config.loss.likelihood))
    images = np.random.default_rng(4).random((4, 16, *SHAPE)).astype(np.float32)
    state, rng = _state(config), jax.random.key(5)
    for batch in images[:2]:
        state, _ = step(state, batch, rng)
    manager = checkpoint.make_manager(tmp_path, async_save=False)
    checkpoint.save(manager, state)
    restored = checkpoint.restore_latest(manager, jax.eval_shape(lambda: _state(config, seed=9)))
    manager.close()
    assert int(restored.step) == 2
    assert isinstance(restored.disc["opt_state"], type(state.disc["opt_state"]))
    for a, b in ((state, restored), (state.disc, restored.disc)):
        np.testing.assert_equal(_flat(a), _flat(b))
    for batch in images[2:]:
        state, _ = step(state, batch, rng)
        restored, _ = step(restored, batch, rng)
    np.testing.assert_equal(_flat(restored.params), _flat(state.params))
    np.testing.assert_equal(_flat(restored.disc), _flat(state.disc))
