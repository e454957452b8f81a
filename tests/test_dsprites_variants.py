"""Color-, Noisy- and Textured-dSprites against numpy references of disentanglement_lib's recipes."""

import numpy as np
import pytest
from PIL import Image

from experiments import common
from vae_jax import data as data_lib
from vae_jax.data import dsprites_variants as variants
from vae_jax.data.dsprites import DSprites
from vae_jax.errors import DataError

FACTORS = np.array([[0, 5, 0, 16, 16], [1, 3, 10, 0, 31], [2, 4, 20, 31, 0], [0, 0, 39, 8, 24]])


def _masks(factors=FACTORS):
    return DSprites().sample_observations_from_factors(factors)  # [N, 64, 64, 1] in {0, 1}


@pytest.mark.parametrize("name", ["color_dsprites", "noisy_dsprites", "textured_dsprites"])
def test_interface_shapes_dtypes_and_reproducibility(name):
    gt = data_lib.get_ground_truth_data(name)
    assert gt.factor_names == DSprites.factor_names and tuple(gt.factor_sizes) == (3, 6, 40, 32, 32)
    assert tuple(gt.observation_shape) == (64, 64, 3) and gt.stochastic_observations
    factors = gt.sample_factors(6, np.random.default_rng(0))
    a = gt.sample_observations_from_factors(factors, np.random.default_rng(1))
    b = gt.sample_observations_from_factors(factors, np.random.default_rng(1))
    c = gt.sample_observations_from_factors(factors, np.random.default_rng(2))
    assert a.shape == (6, 64, 64, 3) and a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # colours / noise / crops are drawn per call
    with pytest.raises(ValueError, match="rng"):
        gt.sample_observations_from_factors(factors)


def test_color_dsprites_is_mask_times_one_colour_in_upper_half_cube():
    x = variants.ColorDSprites().sample_observations_from_factors(FACTORS, np.random.default_rng(3))
    colour = np.random.default_rng(3).uniform(0.5, 1.0, size=(len(FACTORS), 1, 1, 3))
    np.testing.assert_allclose(x, _masks() * colour, rtol=1e-6)
    m = _masks()[..., 0] == 1
    for image, mask in zip(x, m, strict=True):
        sprite = image[mask]
        assert (sprite == sprite[0]).all() and (0.5 <= sprite[0]).all() and (sprite[0] <= 1.0).all()
        assert (image[~mask] == 0).all()


def test_noisy_dsprites_white_sprite_over_uniform_noise():
    x = variants.NoisyDSprites().sample_observations_from_factors(FACTORS, np.random.default_rng(4))
    noise = np.random.default_rng(4).uniform(0.0, 1.0, size=(len(FACTORS), 64, 64, 3))
    np.testing.assert_allclose(x, np.minimum(_masks() + noise, 1.0), rtol=1e-6)
    m = _masks()[..., 0] == 1
    assert (x[m] == 1.0).all()
    background = x[~m]
    assert abs(background.mean() - 0.5) < 0.01 and background.std() > 0.28  # U[0, 1]: std 0.289


def _textured_reference(texture, masks, rng):
    """disentanglement_lib's ScreamDSprites loop, image by image."""
    n, (h, w) = len(masks), texture.shape[:2]
    top, left = rng.integers(0, h - 64, size=n), rng.integers(0, w - 64, size=n)
    shift = rng.uniform(0.0, 1.0, size=(n, 1, 1, 3))
    out = np.zeros((n, 64, 64, 3))
    for i in range(n):
        background = (texture[top[i] : top[i] + 64, left[i] : left[i] + 64] + shift[i]) / 2.0
        mask = masks[i, :, :, 0] == 1
        background[mask] = 1 - background[mask]
        out[i] = background
    return out


def test_textured_dsprites_inverts_the_sprite_into_a_texture_crop():
    gt = variants.TexturedDSprites()
    x = gt.sample_observations_from_factors(FACTORS, np.random.default_rng(5))
    want = _textured_reference(gt.texture, _masks(), np.random.default_rng(5))
    np.testing.assert_allclose(x, want, atol=1e-6)
    texture = variants.procedural_texture()
    assert texture.shape == (274, 350, 3) and 0.0 <= texture.min() and texture.max() == 1.0
    assert texture.std() > 0.1 and np.array_equal(texture, variants.procedural_texture())


def test_texture_from_a_file_is_shrunk_like_the_scream(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "painting.png")
    c = common.base_config()
    c.data.texture = str(tmp_path / "painting.png")
    gt = data_lib.get_ground_truth_data("textured_dsprites", c.data)
    # PIL's thumbnail((350, 274)) keeps the aspect ratio: 400x300 -> 350x262.5, rounded to 263.
    assert gt.texture.shape == (263, 350, 3) and gt.texture_path == c.data.texture
    x = gt.sample_observations_from_factors(FACTORS, np.random.default_rng(6))
    want = _textured_reference(gt.texture, _masks(), np.random.default_rng(6))
    np.testing.assert_allclose(x, want, atol=1e-6)
    Image.fromarray(pixels[:60, :60]).save(tmp_path / "tiny.png")
    with pytest.raises(DataError, match="more than 64 pixels"):
        variants.TexturedDSprites(tmp_path / "tiny.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="not a readable image"):
        variants.TexturedDSprites(tmp_path / "junk.png")
