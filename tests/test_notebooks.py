"""Every notebook is what make_notebooks.py writes, and runs end to end at smoke scale showing its
results, so none goes stale."""

import importlib.util
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# What each notebook must show once run: (output type, a pattern its text or data matches).
SHOWS = {
    "latent_space_2d": [("display_data", "image/png")],
    "beta_vae_dsprites": [("display_data", "image/png"), ("execute_result", r"'mig': [0-9.e-]+")],
    "vqvae_codebook": [("stream", r"\d+ of \d+ codes used; perplexity \d"), ("display_data", "image/png")],
}


def test_notebooks_are_generated_from_make_notebooks(tmp_path):
    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "notebooks" / "make_notebooks.py")
    make_notebooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_notebooks)
    generated = make_notebooks.write(tmp_path)
    assert sorted(p.name for p in generated) == [p.name for p in NOTEBOOKS]
    for path in generated:
        committed = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
        fresh = nbformat.read(path, as_version=4)
        assert [(c.id, c.cell_type, c.source) for c in committed.cells] == [
            (c.id, c.cell_type, c.source) for c in fresh.cells
        ], f"{path.name} differs from make_notebooks.py: run python notebooks/make_notebooks.py"


def _texts(output) -> str:
    if output.output_type == "stream":
        return output.text
    return " ".join(f"{kind} {value}" for kind, value in output.get("data", {}).items())


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
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)  # every cell ran
    outputs = [o for cell in code for o in cell.get("outputs", [])]
    for kind, pattern in SHOWS[path.stem]:
        assert any(o.output_type == kind and re.search(pattern, _texts(o)) for o in outputs), (kind, pattern)
