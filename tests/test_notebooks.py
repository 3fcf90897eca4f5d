"""The tutorials as notebooks: the committed tutorials/notebooks/*.ipynb are what
scripts/build_notebooks.py builds from tutorials/*.py today; each tutorial's first code cell
installs minitune where it is missing (Colab); and (slow) every notebook runs under a real Jupyter
kernel in a fresh virtual environment outside the checkout, minitune installed there from the
checkout by that first cell, as a wheel that carries the shipped files."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest
from conftest import import_or_skip

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
REBUILD = "python scripts/build_notebooks.py"


def load_build_script():
    """scripts/build_notebooks.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", ROOT / "scripts" / "build_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_cells(source: Path) -> list[str]:
    """A percent-format tutorial's code cells, as text ("# %%" starts one, "# %% [markdown]" a text cell)."""
    cells = re.split(r"^# %%(.*)\n", source.read_text(encoding="utf-8"), flags=re.M)[1:]
    return [
        body.strip()
        for kind, body in zip(cells[::2], cells[1::2], strict=True)
        if "[markdown]" not in kind
    ]


def test_the_committed_notebooks_are_built_from_the_tutorials():
    import_or_skip("jupytext")
    build = load_build_script()
    assert [p.stem for p in build.sources()] == [p.stem for p in TUTORIALS]
    stale = [
        str(build.notebook_path(source).relative_to(ROOT))
        for source in TUTORIALS
        if not build.notebook_path(source).is_file()
        or build.notebook_path(source).read_text(encoding="utf-8") != build.build(source)
    ]
    assert not stale, (
        f"{', '.join(stale)}: out of date with tutorials/*.py; rebuild with `{REBUILD}`"
    )
    unbuilt = sorted(
        {p.stem for p in build.NOTEBOOKS.glob("*.ipynb")} - {p.stem for p in TUTORIALS}
    )
    assert not unbuilt, f"notebooks without a tutorial: {unbuilt}; `{REBUILD}` removes them"


def test_a_built_notebook_has_no_outputs_and_the_same_bytes_each_time():
    import_or_skip("jupytext")
    build = load_build_script()
    text = build.build(TUTORIALS[1])
    assert build.build(TUTORIALS[1]) == text  # jupytext alone draws random cell ids
    nb = json.loads(text)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert ["".join(c["source"]) for c in code] == code_cells(TUTORIALS[1])


def test_every_tutorial_first_installs_minitune_where_it_is_missing(monkeypatch):
    first = {code_cells(source)[0] for source in TUTORIALS}
    assert len(first) == 1, "the nine tutorials' install cells differ"
    cell = first.pop()
    assert not re.search(r"^\s*(import|from) minitune", cell, re.M)  # it runs before any
    default = re.search(r'"MINITUNE_SOURCE", "([^"]+)"', cell).group(1)
    readme = (ROOT / "tutorials" / "README.md").read_text(encoding="utf-8")
    assert "MINITUNE_SOURCE" in readme and default in readme

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append(args[0]))
    monkeypatch.delenv("MINITUNE_SOURCE", raising=False)
    exec(cell, {})  # minitune is here (this test imports it): the cell does nothing
    assert calls == []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as in a bare Colab
    if "<owner>" in default:  # a placeholder until the repository is published: say what to set
        with pytest.raises(RuntimeError, match="set MINITUNE_SOURCE"):
            exec(cell, {})
    else:
        exec(cell, {})
        assert calls.pop() == [sys.executable, "-m", "pip", "install", "--quiet", default]
    monkeypatch.setenv("MINITUNE_SOURCE", "/some/folder/minitune")
    exec(cell, {})
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "/some/folder/minitune"]]


# The slow part: a fresh environment, and each notebook through a real kernel.

KERNEL = "minitune-fresh"


def _run(*command, **kwargs) -> str:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _copy_of_the_checkout(target: Path) -> Path:
    """The checkout's files (tracked ones, and new ones git does not ignore) copied to `target`:
    pip builds the wheel there and leaves the checkout as it was (no build/, no .egg-info)."""
    listed = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():  # a file deleted but not yet committed is still listed
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def _clean_env(**extra) -> dict:
    """This process's environment without what would make the kernel see the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for name in ("MINITUNE_TUTORIAL_OUT", "FLAN_T5", "MINITUNE_SOURCE", "MPLBACKEND"):
        env.pop(name, None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory):
    """A virtual environment outside the checkout with torch, nbclient and ipykernel (a kernel
    named KERNEL) but no minitune; then the first cell of notebook 01, run by its kernel with
    MINITUNE_SOURCE set to a copy of the checkout, installs minitune there: a wheel, not a link."""
    home = tmp_path_factory.mktemp("fresh")
    venv.create(home / "env", with_pip=True)
    python = str(home / "env" / "bin" / "python")
    env = _clean_env()
    pip = [python, "-m", "pip", "install", "--quiet"]
    _run(*pip, "torch==2.13.0", env=env, timeout=900)
    _run(*pip, "nbclient", "ipykernel", env=env, timeout=900)
    _run(python, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL, env=env)
    missing = subprocess.run(
        [python, "-c", "import minitune"], capture_output=True, text=True, env=env, cwd=home
    )
    assert "No module named 'minitune'" in missing.stderr, "a fresh environment has no minitune"

    first = json.loads((ROOT / "tutorials" / "notebooks" / "01_tokens.ipynb").read_text())
    install = {**first, "cells": [c for c in first["cells"] if c["cell_type"] == "code"][:1]}
    (home / "install.ipynb").write_text(json.dumps(install), encoding="utf-8")
    runner = str(ROOT / "tests" / "execute_notebook.py")
    _run(
        python,
        runner,
        KERNEL,
        str(home / "install.ipynb"),
        str(home / "installed.ipynb"),
        env=_clean_env(MINITUNE_SOURCE=str(_copy_of_the_checkout(home / "source"))),
        cwd=home,
        timeout=900,
    )
    where = _run(
        python,
        "-c",
        "import minitune.run.paths as p; print(p.PACKAGE, p.shipped_root())",
        env=env,
        cwd=home,
    )
    package, shipped = where.split()
    assert package.startswith(str(home / "env")), package  # the wheel, not the checkout
    assert shipped == str(Path(package) / "shipped")
    return python


@pytest.mark.slow  # ~5 minutes: a fresh environment, then nine notebooks in quick mode
@pytest.mark.parametrize("source", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_the_notebook_runs_under_a_real_kernel(source, fresh_python, tmp_path):
    notebook = tmp_path / f"{source.stem}.ipynb"
    shutil.copy(ROOT / "tutorials" / "notebooks" / notebook.name, notebook)
    start = time.perf_counter()
    done = subprocess.run(
        [
            fresh_python,
            str(ROOT / "tests" / "execute_notebook.py"),
            KERNEL,
            str(notebook),
            str(tmp_path / "out.ipynb"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_clean_env(MINITUNE_QUICK="1"),
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    print(f"{source.stem}: {time.perf_counter() - start:.0f} s with the kernel's start")
    executed = json.loads((tmp_path / "out.ipynb").read_text(encoding="utf-8"))
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code), "every code cell ran"
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    for cell in code:  # a picture the tutorial shows is drawn under its cell, once per show()
        names = re.findall(r'^\s*show\(fig, "(\w+)"\)', "".join(cell["source"]), re.M)
        images = [o for o in cell["outputs"] if "image/png" in o.get("data", {})]
        assert len(images) == len(names), (cell["id"], names, len(images))
        for name in names:  # and saved under the kernel's folder, not in the package
            assert (tmp_path / "runs" / "tutorials" / f"{name}.png").is_file(), name
