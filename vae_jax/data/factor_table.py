"""A ground-truth-factor source over a stored set of images labelled with their factors.

The datasets that ship as files (Shapes3D, SmallNORB, Cars3D, MPI3D) are finite
sets of images, each labelled with the indices of all its factors. `FactorTable`
answers `sample_observations_from_factors` by lookup:

- Latent factors are the ones a metric sees; nuisance factors (SmallNORB's
  instance, as in disentanglement_lib) are not, and are drawn at random among the
  images that match the latent factors.
- A full grid (every latent combination present) is answered exactly.
- A set that is not a full grid (a partial download, TFDS mock data) is answered
  with the nearest available combination: Euclidean distance between factor
  indices scaled to [0, 1], ties broken by the KD-tree.
"""

from collections.abc import Sequence

import numpy as np
from scipy import spatial

from vae_jax.errors import DataError


def _unit_coordinates(atoms: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Flat grid indices [N] -> factor indices scaled to [0, 1], [N, k]."""
    index = np.stack(np.unravel_index(atoms, tuple(sizes)), axis=1).astype(np.float64)
    return index / np.maximum(np.asarray(sizes) - 1, 1)


class FactorTable:
    """Ground-truth-factor interface over images [N, H, W, C] with factor labels [N, K].

    Args:
      name: the dataset's name (in messages).
      images: uint8 images (scaled to [0, 1] on the way out) or float images in [0, 1].
      labels: int factor indices of every image, [N, K], all factors including nuisance ones.
      factor_names, factor_sizes: of the K labelled factors.
      latent: indices of the latent factors among the K (default: all).
    """

    def __init__(self, name, images, labels, factor_names, factor_sizes, *, latent=None):
        labels = np.asarray(labels, np.int64)
        sizes = np.asarray(factor_sizes, np.int64)
        if len(images) != len(labels) or labels.ndim != 2 or labels.shape[1] != len(sizes):
            raise DataError(f"{name}: {len(images)} images need labels [N, {len(sizes)}], got {labels.shape}")
        if len(labels) == 0 or (labels < 0).any() or (labels >= sizes).any():
            raise DataError(f"{name}: factor labels empty or outside the factor sizes {sizes.tolist()}")
        self.name = name
        self.images = images
        self.labels = labels  # [N, K]
        self.latent = list(range(len(sizes)) if latent is None else latent)
        self.factor_names = tuple(factor_names[i] for i in self.latent)
        self.factor_sizes = tuple(int(sizes[i]) for i in self.latent)
        self.observation_shape = tuple(images.shape[1:])
        atoms = np.ravel_multi_index(tuple(labels[:, self.latent].T), self.factor_sizes)  # [N]
        self._order = np.argsort(atoms, kind="stable")  # rows grouped by latent combination
        counts = np.bincount(atoms, minlength=self.num_examples)
        self._start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._count = counts
        self.full_grid = bool((counts > 0).all())
        self._redirect = self._nearest_present(counts)
        # Several images per combination (nuisance factors, duplicates): the pick needs an rng.
        self.stochastic_observations = bool(counts.max() > 1)

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def num_examples(self) -> int:
        """The number of latent combinations (the grid's size)."""
        return int(np.prod(self.factor_sizes))

    def _nearest_present(self, counts: np.ndarray) -> np.ndarray:
        """For each latent combination, the nearest one that has an image (itself if present)."""
        redirect = np.arange(len(counts))
        if self.full_grid:
            return redirect
        present = np.flatnonzero(counts)
        missing = np.flatnonzero(counts == 0)
        tree = spatial.cKDTree(_unit_coordinates(present, self.factor_sizes))
        _, nearest = tree.query(_unit_coordinates(missing, self.factor_sizes))
        redirect[missing] = present[nearest]
        return redirect

    def sample_factors(self, num: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform latent factor indices, int array [num, num_factors]."""
        return np.stack([rng.integers(0, s, size=num) for s in self.factor_sizes], axis=1)

    def rows_of(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Row indices [num] into `images` for latent factors [num, num_factors]."""
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(f"{self.name}: factors must be [N, {self.num_factors}], got {factors.shape}")
        if (factors < 0).any() or (factors >= np.asarray(self.factor_sizes)).any():
            raise ValueError(f"{self.name}: factor indices out of range; sizes are {self.factor_sizes}")
        atoms = self._redirect[np.ravel_multi_index(tuple(factors.T), self.factor_sizes)]
        count = self._count[atoms]
        if self.stochastic_observations:
            if rng is None:
                raise ValueError(f"{self.name}: sampling nuisance factors needs an rng")
            offset = np.floor(rng.random(len(atoms)) * count).astype(np.int64)
        else:
            offset = np.zeros(len(atoms), np.int64)
        return self._order[self._start[atoms] + offset]

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Images [num, H, W, C] as float32 in [0, 1] for latent factors [num, num_factors]."""
        picked = np.asarray(self.images[self.rows_of(factors, rng)])
        if picked.dtype == np.uint8:
            return picked.astype(np.float32) / np.float32(255.0)
        return picked.astype(np.float32)
