"""Every tutorial runs, in quick mode, as a script (CI runs them so they never rot)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import import_or_skip

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


def test_all_nine_tutorials_are_listed():
    assert len(TUTORIALS) == 9
    readme = (ROOT / "tutorials" / "README.md").read_text(encoding="utf-8")
    for path in TUTORIALS:
        assert f"`{path.name}`" in readme
        assert path.read_text(encoding="utf-8").startswith("# %% [markdown]\n# # ")


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_quick_mode(path, tmp_path):
    import_or_skip("matplotlib")
    env = {
        **os.environ,
        "MINITUNE_QUICK": "1",
        "MINITUNE_TUTORIAL_OUT": str(tmp_path),
        "MPLBACKEND": "Agg",
    }
    env.pop("FLAN_T5", None)
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
