"""Build the tutorials' notebooks from their source, tutorials/NN_name.py ->
tutorials/notebooks/NN_name.ipynb:

    python scripts/build_notebooks.py

The percent-format .py files are what you edit (`# %%` starts a code cell, `# %% [markdown]` a
text cell); the notebooks are built from them with jupytext (the `dev` extra), committed so that
Colab opens them by URL, and never edited by hand. A build writes the same bytes for the same
source: no outputs, no execution counts, cell ids numbered in order, one fixed kernel (Python 3)
and no other metadata. tests/test_notebooks.py rebuilds every notebook in memory and fails,
naming it and this command, when a committed one differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = TUTORIALS / "notebooks"
METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def sources() -> list[Path]:
    """The tutorials, in order: tutorials/01_tokens.py ... tutorials/09_extend_a_layer.py."""
    return sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))


def notebook_path(source: Path) -> Path:
    """Where a tutorial's notebook goes: 01_tokens.py -> tutorials/notebooks/01_tokens.ipynb."""
    return NOTEBOOKS / f"{source.stem}.ipynb"


def build(source: Path) -> str:
    """The notebook of one tutorial, as the text of its .ipynb file (JSON, ending in a newline)."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata = nbformat.from_dict(METADATA)
    nb.nbformat, nb.nbformat_minor = 4, 5
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # jupytext draws random ids: numbered ones keep the bytes
        cell.metadata = nbformat.from_dict({})
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main() -> int:
    """Write each tutorial's notebook, remove those whose tutorial is gone, say what changed."""
    NOTEBOOKS.mkdir(exist_ok=True)
    built = {notebook_path(source): build(source) for source in sources()}
    for path, text in built.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        if path not in built:
            path.unlink()
            print(f"removed {path.relative_to(ROOT)} (no tutorials/{path.stem}.py)")
    print(f"{len(built)} notebooks in {NOTEBOOKS.relative_to(ROOT)}/ are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
