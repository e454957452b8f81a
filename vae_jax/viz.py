"""Pictures: image grids, labelled traversal grids, 2-D latent scatter plots, metric curves, study plots.

Figures are drawn on `matplotlib.figure.Figure` objects and written to files, never through pyplot,
so importing or using this module leaves matplotlib's backend (a notebook's inline one, say) as it is.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import image as mpl_image
from matplotlib.figure import Figure


def image_grid(images: np.ndarray, ncols: int, pad: int = 1) -> np.ndarray:
    """Tiles images [N, H, W, C] into one [rows*(H+pad), ncols*(W+pad), C] array in [0, 1]."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    n, h, w, c = images.shape
    nrows = -(-n // ncols)
    grid = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = image
    return grid


def save_image(path, image: np.ndarray) -> None:
    """Writes one image [H, W, C] in [0, 1] (C = 1: gray) as an RGBA PNG to a path or binary file."""
    pixels = image[..., 0] if image.shape[-1] == 1 else image
    mpl_image.imsave(path, pixels, cmap="gray", vmin=0, vmax=1, format="png")


def save_grid(path: str | Path, images: np.ndarray, ncols: int) -> np.ndarray:
    """Writes a PNG grid of images [N, H, W, C]; returns the grid."""
    grid = image_grid(images, ncols)
    save_image(path, grid)
    return grid


def save_labelled_rows(path: str | Path, rows: np.ndarray, labels: Sequence[str], title: str = "") -> None:
    """Writes rows of images [R, C, H, W, ch] with a text label left of each row (traversals).

    The rows are tiled into one array and drawn as one image: one Axes per tile would make this
    the slowest part of an evaluation.
    """
    r, c, h, w = rows.shape[:4]
    grid = image_grid(rows.reshape(r * c, *rows.shape[2:]), ncols=c)
    fig = Figure(figsize=(c * 0.9 + 2.2, r * 0.9 + 0.4))
    ax = fig.subplots()
    image = grid[..., 0] if grid.shape[-1] == 1 else grid
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([1 + i * (h + 1) + h / 2 for i in range(r)], labels, fontsize=8)
    ax.tick_params(axis="y", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def save_latent_scatter(path: str | Path, z: np.ndarray, labels: np.ndarray | None, title: str) -> None:
    """Scatter of 2-D codes [N, 2], coloured by class label."""
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    sc = ax.scatter(z[:, 0], z[:, 1], c=labels, s=3, cmap="tab10", alpha=0.7)
    if labels is not None:
        fig.colorbar(sc, ax=ax, label="class")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def save_metric_curve(path, xs, values, x_label: str, y_label: str) -> None:
    """Mean and standard deviation (over seeds) of a metric at each swept value."""
    means = [np.mean(v) if v else np.nan for v in values]
    stds = [np.std(v) if v else np.nan for v in values]
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3)
    for x, v in zip(xs, values, strict=True):
        ax.scatter([x] * len(v), v, s=8, color="gray", alpha=0.6)
    if min(xs) > 0 and max(xs) / min(xs) > 10:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(f"{y_label} vs {x_label} (mean ± std over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def save_rate_distortion(path, rates, distortions, colour, colour_label: str) -> None:
    """Rate (KL) against distortion (reconstruction NLL), one point per sweep member."""
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    sc = ax.scatter(rates, distortions, c=colour, cmap="viridis")
    fig.colorbar(sc, ax=ax, label=colour_label)
    ax.set_xlabel("rate: KL(q(z|x) || p(z)) [nats]")
    ax.set_ylabel("distortion: -log p(x|z) [nats]")
    ax.set_title("rate-distortion", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def save_sequences(path, inputs: np.ndarray, recons: np.ndarray) -> None:
    """Input (black) and reconstruction (red) of sequences [N, T, F], one panel each (first feature)."""
    n = len(inputs)
    fig = Figure(figsize=(3 * ((n + 1) // 2), 4.5))
    axes = fig.subplots(2, (n + 1) // 2, squeeze=False)
    for ax, x, r in zip(axes.flat, inputs, recons, strict=False):
        ax.plot(x[:, 0], color="black", lw=1.2, label="input")
        ax.plot(r[:, 0], color="tab:red", lw=1.0, ls="--", label="reconstruction")
        ax.set_xticks([])
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def save_grouped_boxes(path, labels: Sequence[str], values: Sequence[Sequence[float]], metric: str) -> None:
    """One box (quartiles, whiskers at 1.5 IQR) and the points of each group, e.g. method x hyperparameter."""
    fig = Figure(figsize=(max(4.0, 0.55 * len(labels) + 1.5), 4.0))
    ax = fig.subplots()
    positions = np.arange(1, len(labels) + 1)
    filled = [i for i, v in enumerate(values) if len(v)]
    ax.boxplot([values[i] for i in filled], positions=positions[filled], widths=0.6, showfliers=False)
    jitter = np.random.default_rng(0)
    methods = [label.split("\n")[0] for label in labels]  # the first line names the method: the colour
    order = list(dict.fromkeys(methods))
    for x, v, method in zip(positions, values, methods, strict=True):
        colour = f"C{order.index(method) % 10}"
        ax.scatter(x + jitter.uniform(-0.15, 0.15, len(v)), v, s=10, color=colour, alpha=0.7, zorder=3)
    ax.set_xticks(positions, labels, rotation=90, fontsize=7)
    ax.set_xlim(0.4, len(labels) + 0.6)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by method and hyperparameter (points: seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def save_correlation_matrix(path, matrix: np.ndarray, names: Sequence[str], title: str) -> None:
    """A [m, m] correlation matrix in [-1, 1] as an annotated heat map (nan cells blank)."""
    m = len(names)
    fig = Figure(figsize=(0.5 * m + 3.0, 0.5 * m + 2.5))
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
    for i in range(m):
        for j in range(m):
            if np.isfinite(matrix[i, j]):
                colour = "white" if abs(matrix[i, j]) > 0.6 else "black"
                ax.text(j, i, f"{100 * matrix[i, j]:.0f}", ha="center", va="center", fontsize=6, color=colour)
    ax.set_xticks(range(m), names, rotation=90, fontsize=7)
    ax.set_yticks(range(m), names, fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title + " (x100)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def save_code_usage(path, shares: np.ndarray) -> None:
    """Bar chart of each code's share of all assignments [L, K], codes sorted by share, one row per level."""
    levels = len(shares)
    fig = Figure(figsize=(6, 2.2 * levels))
    axes = fig.subplots(levels, 1, squeeze=False)
    for n, (ax, share) in enumerate(zip(axes[:, 0], shares, strict=True)):
        used = int(np.sum(share > 0))
        ax.bar(np.arange(len(share)), np.sort(share)[::-1], width=1.0)
        ax.set_ylabel("share")
        title = f"{used}/{len(share)} codes used"
        ax.set_title(title if levels == 1 else f"level {n}: {title}", fontsize=9)
    axes[-1, 0].set_xlabel("code (sorted by use)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
