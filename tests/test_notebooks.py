"""Every notebook runs end to end at smoke scale, so none goes stale."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_are_generated_from_make_notebooks():
    assert {p.stem for p in NOTEBOOKS} == {"latent_space_2d", "beta_vae_dsprites", "vqvae_codebook"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.slow
def test_notebook_runs(path, tmp_path, idx_dir, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_PRESET", "smoke")
    monkeypatch.setenv("NOTEBOOK_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("NOTEBOOK_IDX_DIR", str(idx_dir))
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") in ("stream", "execute_result", "display_data") for o in outputs)
