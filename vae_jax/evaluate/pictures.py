"""Pictures written to `images/` at each evaluation: reconstructions, samples, traversals."""

from pathlib import Path

import jax
import numpy as np

from vae_jax import viz
from vae_jax.evaluate.inference import Inference


def to_image(mean: np.ndarray) -> np.ndarray:
    """The decoder's mean in data space -> displayable intensities in [0, 1]."""
    return np.clip(mean, 0.0, 1.0)


def traversal_rows(
    inference: Inference, x0: np.ndarray, dims: np.ndarray, span: float = 2.5, steps: int = 9
) -> np.ndarray:
    """Decodes the code of one image x0 [1, ...] with each of `dims` swept over [-span, span].

    Returns [len(dims), steps, H, W, C].
    """
    base = inference.latent(x0)[0]  # [d]
    values = np.linspace(-span, span, steps)
    z = np.repeat(base[None, None], len(dims), 0).repeat(steps, 1)  # [R, S, d]
    for r, d in enumerate(dims):
        z[r, :, d] = values
    images = to_image(inference.decode(z.reshape(-1, base.shape[0]).astype(np.float32)))
    return images.reshape(len(dims), steps, *images.shape[1:])


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between codes a and b [d] at fractions t [S] -> [S, d]."""
    cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t)[:, None] * a + t[:, None] * b
    return (np.sin((1 - t) * omega)[:, None] * a + np.sin(t * omega)[:, None] * b) / np.sin(omega)


def interpolation_rows(inference: Inference, x: np.ndarray, steps: int = 10) -> np.ndarray:
    """Decoded linear and spherical interpolations between encoded pairs (x[0], x[1]), (x[2], x[3]), ...

    Returns [2 * pairs, steps, H, W, C]: for each pair a linear row, then a spherical one.
    """
    codes = inference.latent(x)
    t = np.linspace(0.0, 1.0, steps)
    rows = []
    for a, b in zip(codes[0::2], codes[1::2], strict=False):
        rows += [(1 - t)[:, None] * a + t[:, None] * b, slerp(a, b, t)]
    images = to_image(inference.decode(np.concatenate(rows).astype(np.float32)))
    return images.reshape(len(rows), steps, *images.shape[1:])


def manifold_grid(inference: Inference, size: int = 15, span: float = 2.5) -> np.ndarray:
    """Decodes a size x size grid of 2-D codes over [-span, span]^2 (the decoded manifold)."""
    values = np.linspace(-span, span, size, dtype=np.float32)
    z = np.stack(np.meshgrid(values, values[::-1]), -1).reshape(-1, 2)
    return to_image(inference.decode(z))


def write_pictures(
    inference: Inference, x: np.ndarray, out_dir: str | Path, step: int, rng: jax.Array,
    kl_per_dim: np.ndarray | None = None, dim_labels: list[str] | None = None,
    codes: np.ndarray | None = None, labels: np.ndarray | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Writes out_dir/<kind>_<step>.png (a workdir's images/); returns the grids (for TensorBoard).

    Args:
      inference: the model and its variables.
      x: test examples, [N, ...] (the first 32 are reconstructed, 8 interpolated).
      out_dir, step: where and under which step the files go.
      rng: for the prior samples.
      kl_per_dim: a VAE's mean KL per latent [d] (orders the traversals).
      dim_labels: per latent, the factor it is most informative about (ground-truth data).
      codes, labels: deterministic codes [M, 2] of test examples and their classes, for the
        scatter of a 2-D latent (default: x's codes).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grids = {}
    n = min(len(x), 32)
    recon = to_image(inference.reconstruct(x[:n]))
    if x.ndim == 4:  # images: input row above its reconstruction row
        pairs = np.concatenate([x[:n].reshape(-1, 8, *x.shape[1:]), recon.reshape(-1, 8, *x.shape[1:])], 1)
        grids["reconstructions"] = viz.save_grid(
            out_dir / f"reconstructions_{step}.png", pairs.reshape(-1, *x.shape[1:]), 8
        )
    if x.ndim == 3:  # sequences [N, T, F]: input and reconstruction as curves
        viz.save_sequences(out_dir / f"reconstructions_{step}.png", x[:8], recon[:8])
    if inference.is_vq:
        return grids
    if x.ndim == 4 and len(x) >= 8:
        rows = interpolation_rows(inference, x[:8])
        viz.save_labelled_rows(
            out_dir / f"interpolations_{step}.png", rows, ["linear", "spherical"] * (len(rows) // 2),
            title=f"interpolations between encoded test images (step {step})",
        )  # fmt: skip
    codes = inference.latent(x) if codes is None else codes
    if codes.shape[-1] == 2 and x.ndim == 4:
        kind = "VAE posterior means" if inference.is_vae else "AE codes"
        viz.save_latent_scatter(
            out_dir / f"latent_2d_{step}.png", codes, labels, f"{kind} of test images (step {step})"
        )
        grids["manifold"] = viz.save_grid(out_dir / f"manifold_{step}.png", manifold_grid(inference), 15)
    if inference.is_vae and x.ndim == 4:
        grids["samples"] = viz.save_grid(
            out_dir / f"samples_{step}.png", to_image(inference.sample(64, rng)), 8
        )
        order = np.argsort(-kl_per_dim) if kl_per_dim is not None else np.arange(codes.shape[-1])
        rows = traversal_rows(inference, x[:1], order)
        row_labels = [
            f"z{d}" + (f" KL={kl_per_dim[d]:.2f}" if kl_per_dim is not None else "")
            + (f"\n~{dim_labels[d]}" if dim_labels else "")
            for d in order
        ]  # fmt: skip
        viz.save_labelled_rows(
            out_dir / f"traversals_{step}.png", rows, row_labels,
            title=f"latent traversals (step {step}), rows ordered by KL",
        )  # fmt: skip
    return grids
