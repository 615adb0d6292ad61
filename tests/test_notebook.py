import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"


def _outputs(nb, kind=None):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if kind is None or o.get("output_type") == kind]


@pytest.mark.e2e
def test_explore_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PAD_NOTEBOOK_DIR", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert (tmp_path / "export" / "dataset_dict.json").exists()
    text = "".join(o.get("text", "") for o in _outputs(nb, "stream"))
    assert "problems with at least one correct program" in text
    # the plot is shown inline, and nothing is written to stderr (no TqdmWarning, no other warning)
    assert any("image/png" in o.get("data", {}) for o in _outputs(nb, "display_data"))
    assert [o["text"] for o in _outputs(nb, "stream") if o.get("name") == "stderr"] == []


def test_the_committed_notebook_holds_its_outputs_and_nbconvert_is_installed():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # run top to bottom
    assert any("image/png" in o.get("data", {}) for o in _outputs(nb, "display_data"))
    assert not [o for o in _outputs(nb) if o.get("output_type") == "error" or o.get("name") == "stderr"]
    # `jupyter nbconvert` runs the jupyter-nbconvert script installed beside python (setup.sh's test extra)
    import nbconvert

    assert Path(sys.executable).with_name("jupyter-nbconvert").is_file() and nbconvert.__version__
