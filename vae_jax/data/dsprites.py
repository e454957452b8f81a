"""dSprites rendered procedurally (Matthey et al. 2017), as a ground-truth-factor source.

The original factor grid: shape (square, ellipse, heart) x 6 scales in
[0.5, 1] x 40 orientations in [0, 2pi] x 32 x 32 positions in [0, 1]: 737,280
binary 64x64 images. Sprites are drawn from implicit curves on the pixel grid, so
no download is needed; images resemble, but are not bit-identical to, the
released .npz.

Observations can also be built inside a jitted step (`device_observations`): the host draws
what is random about them (`observation_draws`: nothing here; the variants' colours and crops),
and `observations_on_device` renders them from the factors, the draws and `device_tables`,
equal to `sample_observations_from_factors` (vae_jax/data/on_device.py feeds training so).
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

FACTOR_NAMES = ("shape", "scale", "orientation", "position_x", "position_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
_BASE_HALF_SIZE = 0.13  # half-width of a scale-1 sprite, in units of the image side
_POSITION_RANGE = (0.18, 0.82)  # where the sprite centre travels as position goes 0 -> 1


def factor_values(factors: np.ndarray, xp=np) -> dict[str, np.ndarray]:
    """Maps factor indices [N, 5] to their physical values."""
    return {
        "shape": factors[:, 0],
        "scale": xp.asarray(np.linspace(0.5, 1.0, 6), np.float32)[factors[:, 1]],
        "orientation": xp.asarray(np.linspace(0.0, 2 * np.pi, 40), np.float32)[factors[:, 2]],
        "position_x": xp.asarray(np.linspace(0.0, 1.0, 32), np.float32)[factors[:, 3]],
        "position_y": xp.asarray(np.linspace(0.0, 1.0, 32), np.float32)[factors[:, 4]],
    }


def check_factors(factors: np.ndarray) -> np.ndarray:
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES):
        raise ValueError(f"factors must be [N, {len(FACTOR_SIZES)}], got {factors.shape}")
    if np.any(factors < 0) or np.any(factors >= np.array(FACTOR_SIZES)):
        raise ValueError(f"factor indices out of range; sizes are {FACTOR_SIZES}")
    return factors


def render(factors: np.ndarray, size: int = 64, xp=np) -> np.ndarray:
    """Renders factor indices [N, 5] to binary uint8 images [N, size, size, 1].

    `xp` is the array module: numpy, or jax.numpy inside `jax.jit` (see `render_jit`).
    """
    if xp is np:
        factors = check_factors(factors)
    v = factor_values(factors, xp)
    lo, hi = _POSITION_RANGE
    cx = (lo + (hi - lo) * v["position_x"])[:, None, None]
    cy = (lo + (hi - lo) * v["position_y"])[:, None, None]
    theta = v["orientation"][:, None, None]
    r = (_BASE_HALF_SIZE * v["scale"])[:, None, None]
    grid = xp.asarray((np.arange(size) + 0.5) / size, np.float32)
    px, py = grid[None, None, :], grid[None, :, None]  # x along width, y along height
    dx, dy = px - cx, py - cy
    # Rotate the pixel offsets into the sprite's frame, then scale to unit size.
    cos, sin = xp.cos(theta), xp.sin(theta)
    u = (cos * dx + sin * dy) / r
    w = (-sin * dx + cos * dy) / r
    square = (xp.abs(u) <= 1) & (xp.abs(w) <= 1)
    ellipse = u**2 + (w / 0.5) ** 2 <= 1
    hu, hw = 1.1 * u, -1.1 * w + 0.2  # heart pointing down in its own frame
    heart = (hu**2 + hw**2 - 1) ** 3 - hu**2 * hw**3 <= 0
    shape = factors[:, 0][:, None, None]
    image = xp.where(shape == 0, square, xp.where(shape == 1, ellipse, heart))
    return image.astype(np.uint8)[..., None]


@functools.partial(jax.jit, static_argnames="size")
def _render_jax(factors: jax.Array, size: int = 64) -> jax.Array:
    return render(factors, size, xp=jnp).astype(jnp.float32)


def render_jit(factors: np.ndarray, size: int = 64) -> np.ndarray:
    """`render` compiled by XLA (float32 images), for large batches."""
    return np.asarray(_render_jax(jnp.asarray(check_factors(factors), jnp.int32), size))


class DSprites:
    """Ground-truth-factor dataset interface over procedural dSprites."""

    name = "dsprites"
    factor_names: Sequence[str] = FACTOR_NAMES
    factor_sizes: Sequence[int] = FACTOR_SIZES
    observation_shape: Sequence[int] = (64, 64, 1)
    stochastic_observations = False  # each factor combination has one image
    device_observations = True  # observations_on_device equals sample_observations_from_factors

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def num_examples(self) -> int:
        return int(np.prod(self.factor_sizes))

    def sample_factors(self, num: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform factor indices, int array [num, num_factors]."""
        return np.stack([rng.integers(0, s, size=num) for s in self.factor_sizes], axis=1)

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Images [num, 64, 64, 1] as float32 in {0, 1} (rendering is deterministic)."""
        del rng
        return render_jit(factors)

    def observation_draws(self, factors: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """What `sample_observations_from_factors` draws from rng for these factors (nothing)."""
        del factors, rng
        return {}

    def device_tables(self) -> dict[str, np.ndarray]:
        """Arrays `observations_on_device` reads, placed on the device once (none)."""
        return {}

    def observations_on_device(self, factors: jax.Array, draws: dict, tables: dict) -> jax.Array:
        """`sample_observations_from_factors` inside a jitted function: [N, 5] ints -> [N, 64, 64, 1]."""
        del draws, tables
        return render(factors, self.observation_shape[0], xp=jnp).astype(jnp.float32)
