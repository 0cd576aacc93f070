"""Notebooks are committed without outputs (pytest --nbmake executes them separately)."""

from __future__ import annotations

import json
import pathlib

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_notebooks_exist() -> None:
    assert len(NOTEBOOKS) >= 2


def test_notebooks_have_outputs_cleared() -> None:
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


def test_notebooks_use_only_the_public_api() -> None:
    for path in NOTEBOOKS:
        source = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        assert "from pipeline." not in source and "import pipeline." not in source, path.name
