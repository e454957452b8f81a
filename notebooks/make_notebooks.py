"""Writes the notebooks of this folder from their cells (kept here so diffs stay readable).

  python notebooks/make_notebooks.py
Each notebook reads NOTEBOOK_PRESET (default 'quick'; the test suite runs 'smoke') and
NOTEBOOK_WORKDIR (default runs/notebook_<name>), and only imports vae_jax.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

SETUP = """import os
from pathlib import Path
import json
import numpy as np
import matplotlib.pyplot as plt
PRESET = os.environ.get("NOTEBOOK_PRESET", "quick")
WORKDIR = Path(os.environ.get("NOTEBOOK_WORKDIR", "runs/notebook_{name}"))
"""

NOTEBOOKS = {
    "latent_space_2d": [
        new_markdown_cell(
            "# A 2-D latent space explorer on Fashion-MNIST\n\n"
            "The lecture's picture: an autoencoder and a VAE with a 2-D latent, side by side. "
            "The AE's codes scatter over an arbitrary region; the VAE's KL term packs them into "
            "the prior's ball, so decoding a grid of codes gives plausible garments everywhere."
        ),
        new_code_cell(SETUP.format(name="latent_space_2d")),
        new_code_cell(
            "from experiments import latent2d\n"
            "from vae_jax import train_and_evaluate\n"
            "results = {}\n"
            "for model in ('ae', 'vae'):\n"
            "    config = latent2d.get_config(f'{model},{PRESET}')\n"
            "    if os.environ.get('NOTEBOOK_IDX_DIR'):  # tests: generated idx files\n"
            "        config.data.source, config.data.local_dir = 'local', os.environ['NOTEBOOK_IDX_DIR']\n"
            "        config.data.data_dir = str(WORKDIR / 'tfds')\n"
            "    results[model] = train_and_evaluate(config, WORKDIR / model)\n"
            "    results[model]['steps'] = config.train.num_steps\n"
            "print(json.dumps(results, indent=1))"
        ),
        new_code_cell(
            "fig, axes = plt.subplots(2, 2, figsize=(11, 10))\n"
            "for row, model in enumerate(('ae', 'vae')):\n"
            "    step = results[model]['steps']\n"
            "    for col, kind in enumerate(('latent_2d', 'manifold')):\n"
            "        axes[row, col].imshow(plt.imread(WORKDIR / model / 'images' / f'{kind}_{step}.png'))\n"
            "        axes[row, col].set_title(f'{model.upper()}: {kind}'); axes[row, col].axis('off')\n"
            "plt.tight_layout()"
        ),
    ],
    "beta_vae_dsprites": [
        new_markdown_cell(
            "# β-VAE on dSprites: traversals and disentanglement scores\n\n"
            "Trains the β-VAE of `experiments/beta_vae.py` (procedural dSprites, no download), "
            "shows the latent traversals (rows ordered by KL, labelled with the factor each "
            "latent is most informative about) and computes the study's disentanglement metrics."
        ),
        new_code_cell(SETUP.format(name="beta_vae_dsprites")),
        new_code_cell(
            "from experiments import beta_vae\n"
            "from vae_jax import train_and_evaluate\n"
            "config = beta_vae.get_config(PRESET)\n"
            "results = train_and_evaluate(config, WORKDIR)\n"
            "print({k: round(v, 3) for k, v in results.items()})"
        ),
        new_code_cell(
            "plt.figure(figsize=(10, 10))\n"
            "plt.imshow(plt.imread(WORKDIR / 'images' / f'traversals_{config.train.num_steps}.png'))\n"
            "plt.axis('off');"
        ),
        new_code_cell(
            "import vae_jax\n"
            "run = vae_jax.load_run(WORKDIR)  # the config, model and variables of the latest checkpoint\n"
            "small = PRESET == 'smoke'  # the study's protocol takes minutes on a CPU\n"
            "protocols = {m: {'num_train': 100, 'num_eval': 50, 'batch_size': 16} for m in ('beta_vae_score', 'factor_vae_score')}\n"
            "protocols['factor_vae_score']['num_variance_estimate'] = 1000\n"
            "protocols.update({m: {'num_train': 1000, 'num_test': 500}\n"
            "                  for m in ('dci', 'sap', 'modularity_explicitness')})\n"
            "protocols['dci']['importance_model'] = 'random_forest'  # the fast options\n"
            "protocols['sap']['svm_solver'] = 'primal'\n"
            "protocols.update({m: {'num_train': 1000} for m in ('mig', 'unsupervised')})\n"
            "from vae_jax.evaluate.disentanglement import METRICS\n"
            "scores = vae_jax.compute_metrics(\n"
            "    list(METRICS), vae_jax.get_ground_truth_data('dsprites'), run.representation,\n"
            "    grid_cache=not small, **(protocols if small else {}))\n"
            "scores"
        ),
    ],
    "vqvae_codebook": [
        new_markdown_cell(
            "# VQ-VAE: codebook usage, reconstructions and samples\n\n"
            "Trains `experiments/vq_vae.py` (EMA codebook, dead-code restart), then looks at how "
            "many of the K codes are used, their frequencies, and decodes code grids. The samples "
            "below draw each latent position's code independently from its empirical frequency "
            "(a baseline prior: an autoregressive prior over the code grid is what makes them sharp)."
        ),
        new_code_cell(SETUP.format(name="vqvae_codebook")),
        new_code_cell(
            "from experiments import vq_vae\n"
            "from vae_jax import train_and_evaluate\n"
            "config = vq_vae.get_config(PRESET)\n"
            "if os.environ.get('NOTEBOOK_IDX_DIR'):\n"
            "    config.data.source, config.data.local_dir = 'local', os.environ['NOTEBOOK_IDX_DIR']\n"
            "    config.data.data_dir = str(WORKDIR / 'tfds')\n"
            "results = train_and_evaluate(config, WORKDIR)\n"
            "print({k: round(v, 3) for k, v in results.items()})"
        ),
        new_code_cell(
            "import vae_jax\n"
            "from vae_jax.data import load_dataset\n"
            "run = vae_jax.load_run(WORKDIR)\n"
            "images = load_dataset(run.config).eval_images[:500]\n"
            "indices = run.encode(images)  # the code grid of each image, [N, 7, 7]\n"
            "counts = np.bincount(indices.ravel(), minlength=config.model.vq.num_codes)\n"
            "p = counts[counts > 0] / counts.sum()\n"
            "print(f'{(counts > 0).sum()} of {len(counts)} codes used; perplexity {np.exp(-(p * np.log(p)).sum()):.1f}')\n"
            "plt.figure(figsize=(8, 3)); plt.bar(np.arange(len(counts)), np.sort(counts)[::-1])\n"
            "plt.xlabel('code (sorted by use)'); plt.ylabel('count');"
        ),
        new_code_cell(
            "rng = np.random.default_rng(0)\n"
            "flat = indices.reshape(len(indices), -1)\n"
            "samples = np.stack([rng.choice(flat[:, p], size=16) for p in range(flat.shape[1])], 1)\n"
            "images = run.decode(samples.reshape(16, *indices.shape[1:]))\n"
            "from vae_jax import viz\n"
            "plt.imshow(viz.image_grid(np.clip(images, 0, 1), 8)[..., 0], cmap='gray'); plt.axis('off');"
        ),
    ],
}


def write(directory: Path) -> list[Path]:
    """Writes every notebook of NOTEBOOKS into directory; returns their paths."""
    paths = []
    for name, cells in NOTEBOOKS.items():
        for i, cell in enumerate(cells):  # stable ids: regenerating leaves unchanged cells unchanged
            cell.id = f"cell-{i}"
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
        paths.append(Path(directory) / f"{name}.ipynb")
        nbformat.write(nb, paths[-1])
    return paths


def main():
    write(Path(__file__).parent)


if __name__ == "__main__":
    main()
