"""Codebook health over a whole evaluation set: usage, perplexity (per residual level), histogram.

Perplexity of a batch is bounded by the number of codes in it, so it grows with the batch
size; the values here count every code index of the eval set at once (or, for training, of
an epoch's batches: `health_of_counts` of the summed histograms).
"""

from pathlib import Path

import numpy as np

from vae_jax import viz


def code_counts(indices: np.ndarray, num_codes: int) -> np.ndarray:
    """Counts [L, K] of each code per level from indices [N, positions, L] (or [N, positions])."""
    indices = np.asarray(indices)
    if indices.ndim == 2:
        indices = indices[..., None]
    levels = indices.shape[-1]
    flat = indices.reshape(-1, levels)
    return np.stack([np.bincount(flat[:, n], minlength=num_codes) for n in range(levels)]).astype(np.float64)


def usage_and_perplexity(counts: np.ndarray) -> tuple[float, float]:
    """(fraction of codes used at least once, exp(entropy) of the code distribution) of counts [K]."""
    p = counts / max(counts.sum(), 1.0)
    nz = p[p > 0]
    return float(np.mean(counts > 0)), float(np.exp(-np.sum(nz * np.log(nz))))


def codebook_health(indices: np.ndarray, num_codes: int) -> dict[str, float]:
    """`codebook_usage` and `perplexity` (means over levels), and `*_level<n>` for several levels."""
    return health_of_counts(code_counts(indices, num_codes))


def health_of_counts(counts: np.ndarray, prefix: str = "") -> dict[str, float]:
    """`codebook_health` of a code histogram [K] or [L, K] (per level), its keys prefixed."""
    counts = np.asarray(counts, np.float64).reshape(-1, np.shape(counts)[-1])
    per_level = [usage_and_perplexity(c) for c in counts]
    summary = {
        f"{prefix}codebook_usage": float(np.mean([u for u, _ in per_level])),
        f"{prefix}perplexity": float(np.mean([p for _, p in per_level])),
    }
    if len(per_level) > 1:
        for n, (u, p) in enumerate(per_level):
            summary[f"{prefix}codebook_usage_level{n}"], summary[f"{prefix}perplexity_level{n}"] = u, p
    return summary


def write_usage_histogram(indices: np.ndarray, num_codes: int, images_dir: Path, step: int) -> Path:
    """images/code_usage_<step>.png: each code's share of the eval set's positions, per level."""
    counts = code_counts(indices, num_codes)
    path = Path(images_dir) / f"code_usage_{step}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    viz.save_code_usage(path, counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0))
    return path
