"""The colour, noise and texture variants of dSprites, as disentanglement_lib defines them.

Same five factors and procedural sprites as `dsprites.DSprites`; what changes is
how an observation is drawn from the binary sprite mask m [64, 64] (Locatello et
al. 2019, Sec. 5; disentanglement_lib `data/ground_truth/dsprites.py`):

- Color-dSprites: x = m * c, one colour c ~ U[0.5, 1]^3 per image (black background).
- Noisy-dSprites: x = min(m + u, 1), background noise u ~ U[0, 1]^(64x64x3) per pixel.
- Textured-dSprites (the recipe of Scream-dSprites): a random 64x64 crop t of a
  texture, b = (t + c) / 2 with c ~ U[0, 1]^3 per image, and the sprite's pixels
  inverted: x = b where m = 0, 1 - b where m = 1. disentanglement_lib uses Munch's
  *The Scream*, which cannot be bundled here: pass the painting (or any image) as
  `config.data.texture`. Without one the texture is procedural (warped colour
  waves), so a run without it is *not* Scream-dSprites.

The colours, noise and crops are drawn at each call from its rng, so these sources
have stochastic observations (`stochastic_observations = True`). Color- and Textured-dSprites
also build them on the device from the same draws (`DSprites.observations_on_device`); the
noise of Noisy-dSprites is as large as its image, so it is drawn and added on the host.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.data.dsprites import DSprites
from vae_jax.errors import DataError

# disentanglement_lib shrinks the painting with PIL's thumbnail((350, 274)) before cropping.
TEXTURE_MAX_SIZE = (350, 274)  # (width, height)
_SPRITE = 64


def _need_rng(rng, name: str) -> np.random.Generator:
    if rng is None:
        raise ValueError(f"{name} draws colours or noise per image: pass a numpy Generator as rng")
    return rng


class _RGBDSprites(DSprites):
    """Shared parts: three channels, stochastic observations from a sprite mask."""

    observation_shape = (64, 64, 3)
    stochastic_observations = True

    def masks(self, factors: np.ndarray) -> np.ndarray:
        """Binary sprite masks [num, 64, 64, 1] as float32."""
        return super().sample_observations_from_factors(factors)

    def masks_on_device(self, factors: jax.Array) -> jax.Array:
        """`masks` inside a jitted function."""
        return super().observations_on_device(factors, {}, {})


class ColorDSprites(_RGBDSprites):
    """dSprites with each sprite coloured by a random RGB in [0.5, 1]^3 on a black background."""

    name = "color_dsprites"

    def sample_observations_from_factors(self, factors, rng=None) -> np.ndarray:
        """Images [num, 64, 64, 3] float32: mask * colour, colour ~ U[0.5, 1]^3 per image."""
        masks = self.masks(factors)
        return masks * self.observation_draws(factors, _need_rng(rng, self.name))["colour"]

    def observation_draws(self, factors, rng) -> dict[str, np.ndarray]:
        """The colour of each image, [num, 1, 1, 3] float32."""
        return {"colour": rng.uniform(0.5, 1.0, size=(len(factors), 1, 1, 3)).astype(np.float32)}

    def observations_on_device(self, factors, draws, tables) -> jax.Array:
        return self.masks_on_device(factors) * draws["colour"]


class NoisyDSprites(_RGBDSprites):
    """dSprites (white sprite) over uniform noise in every background pixel and channel."""

    name = "noisy_dsprites"
    device_observations = False  # a draw per pixel: as large as the image it makes

    def sample_observations_from_factors(self, factors, rng=None) -> np.ndarray:
        """Images [num, 64, 64, 3] float32: min(mask + noise, 1), noise ~ U[0, 1] per pixel."""
        rng = _need_rng(rng, self.name)
        masks = self.masks(factors)
        noise = rng.uniform(0.0, 1.0, size=(len(masks), _SPRITE, _SPRITE, 3)).astype(np.float32)
        return np.minimum(masks + noise, 1.0)


def procedural_texture(height: int = 274, width: int = 350, seed: int = 0) -> np.ndarray:
    """A deterministic colourful texture [height, width, 3] in [0, 1]: domain-warped waves.

    A stand-in for a painting (swirls at several scales in every channel); it is not the Scream.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64) / max(height, width)
    warp = sum(
        np.sin(rng.uniform(5, 25) * (x * np.cos(a) + y * np.sin(a)) + rng.uniform(0, 7))
        for a in rng.uniform(0, np.pi, 3)
    )
    channels = []
    for _ in range(3):
        waves = 0.0
        for _ in range(5):
            freq, angle, phase = rng.uniform(10, 80), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
            waves = waves + np.sin(freq * (x * np.cos(angle) + y * np.sin(angle)) + 1.5 * warp + phase)
        channels.append(waves)
    texture = np.stack(channels, axis=-1)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    return texture.astype(np.float32)


def load_texture(path: str | Path) -> np.ndarray:
    """An image file as float32 RGB [H, W, 3] in [0, 1], shrunk as disentanglement_lib does."""
    from PIL import Image

    path = Path(path).expanduser()
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail(TEXTURE_MAX_SIZE)
            texture = np.asarray(image, np.float32) / 255.0
    except (OSError, ValueError) as e:
        raise DataError(f"config.data.texture={str(path)!r} is not a readable image ({e})") from e
    if min(texture.shape[:2]) <= _SPRITE:
        raise DataError(
            f"config.data.texture={str(path)!r} is {texture.shape[1]}x{texture.shape[0]} after shrinking "
            f"to fit {TEXTURE_MAX_SIZE}; 64x64 crops need more than 64 pixels each way"
        )
    return texture


class TexturedDSprites(_RGBDSprites):
    """dSprites inverted into a random crop of a texture (Scream-dSprites' recipe).

    Args:
      texture: path of the texture image (`config.data.texture`); None: the procedural texture.
    """

    name = "textured_dsprites"

    def __init__(self, texture: str | Path | None = None):
        self.texture_path = None if texture is None else str(texture)
        self.texture = procedural_texture() if texture is None else load_texture(texture)

    def sample_observations_from_factors(self, factors, rng=None) -> np.ndarray:
        """Images [num, 64, 64, 3] float32: crop b = (texture + c) / 2, 1 - b on the sprite."""
        draws = self.observation_draws(factors, _need_rng(rng, self.name))
        return self._invert(self.masks(factors), draws, self.texture, np)

    def observation_draws(self, factors, rng) -> dict[str, np.ndarray]:
        """Each image's crop offsets [num] and tint [num, 1, 1, 3], drawn in that order."""
        n, (h, w) = len(factors), self.texture.shape[:2]
        top = rng.integers(0, h - _SPRITE, size=n)
        left = rng.integers(0, w - _SPRITE, size=n)
        tint = rng.uniform(0.0, 1.0, size=(n, 1, 1, 3))
        return {"top": top.astype(np.int32), "left": left.astype(np.int32), "tint": tint}

    def device_tables(self) -> dict[str, np.ndarray]:
        return {"texture": self.texture}

    def observations_on_device(self, factors, draws, tables) -> jax.Array:
        """As on the host, in float32 where the host adds the tint in float64 (1 ulp apart)."""
        draws = {**draws, "tint": draws["tint"].astype(jnp.float32)}
        return self._invert(self.masks_on_device(factors), draws, tables["texture"], jnp)

    @staticmethod
    def _invert(masks, draws, texture, xp):
        """The crops b = (texture + tint) / 2, 1 - b where the sprite is."""
        offsets = xp.arange(_SPRITE)
        rows = (draws["top"][:, None] + offsets)[:, :, None]
        cols = (draws["left"][:, None] + offsets)[:, None, :]
        background = (texture[rows, cols] + draws["tint"]) / 2.0  # [N, 64, 64, 3]
        return xp.where(masks == 1.0, 1.0 - background, background).astype(np.float32)
