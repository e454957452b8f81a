"""The sub-pixel transposed convolution equals flax's ConvTranspose, values and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.models import ConvDecoder
from vae_jax.models.strided import SubPixelConvTranspose


@pytest.mark.parametrize("shape,features", [((2, 4, 4, 3), 5), ((3, 8, 6, 16), 1), ((1, 1, 1, 2), 4)])
def test_subpixel_equals_conv_transpose(shape, features):
    x = jax.random.normal(jax.random.key(0), shape)
    plain = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")
    variables = plain.init(jax.random.key(1), x)
    variables = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), variables)
    sub = SubPixelConvTranspose(features)
    assert jax.tree.structure(sub.init(jax.random.key(1), x)) == jax.tree.structure(variables)
    np.testing.assert_allclose(sub.apply(variables, x), plain.apply(variables, x), atol=1e-5)
    w = jax.random.normal(jax.random.key(3), plain.apply(variables, x).shape)
    g_plain = jax.grad(lambda v, x: jnp.sum(plain.apply(v, x) * w), argnums=(0, 1))(variables, x)
    g_sub = jax.grad(lambda v, x: jnp.sum(sub.apply(v, x) * w), argnums=(0, 1))(variables, x)
    for a, b in zip(jax.tree.leaves(g_sub), jax.tree.leaves(g_plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_decoder_forms_share_parameters_and_outputs():
    z = jax.random.normal(jax.random.key(0), (2, 10))
    fast, plain = ConvDecoder((64, 64, 1)), ConvDecoder((64, 64, 1), subpixel=False)
    variables = plain.init(jax.random.key(1), z)
    np.testing.assert_allclose(fast.apply(variables, z), plain.apply(variables, z), atol=1e-4)
