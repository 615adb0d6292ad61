from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def test_explore_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PAD_NOTEBOOK_DIR", str(tmp_path))
    nb = nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert (tmp_path / "labels.png").stat().st_size > 1000
    assert (tmp_path / "export" / "dataset_dict.json").exists()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "problems with at least one correct program" in outputs
