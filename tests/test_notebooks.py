"""Notebooks: listed in the README, valid nbformat 4 Python, committed without outputs.

``pytest --nbmake`` executes them separately.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _readme_notebooks() -> set[str]:
    """Notebook names listed in the README's "Notebooks" section."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Notebooks\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S)
    assert section, "README.md has no '## Notebooks' section"
    return set(re.findall(r"`(\d\d-[\w-]+)`", section.group(1)))


def test_the_readme_lists_exactly_the_notebooks_that_exist() -> None:
    listed = _readme_notebooks()
    assert len(listed) >= 2, listed
    assert listed == {path.stem for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_is_valid_nbformat_4_python_that_uses_pipeline(path) -> None:
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    assert nb.nbformat == 4
    nbformat.validate(nb)  # raises ValidationError for a malformed notebook
    assert nb.metadata.kernelspec.language == "python"
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(source.strip() for source in code), "empty or missing code cells"
    assert any(cell.cell_type == "markdown" for cell in nb.cells), "no explanation"
    for source in code:  # plain Python: no IPython magics or shell escapes
        compile(source, str(path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert re.search(r"^import pipeline\b", "\n".join(code), flags=re.M), "never imports pipeline"


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
