"""docs/extending.md's worked example runs as written: the code passes the kit, the broken
version fails it as the page says, and a model trains with it by name."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")


def _minitune(*args, cwd, extra_path):
    env = {"PYTHONPATH": str(extra_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "minitune", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def _example() -> str:
    return re.search(r"```python\n# file: sigmoid_attention.py\n(.*?)```", DOC, re.S).group(1)


def test_the_worked_example_passes_the_kit_and_trains(tmp_path):
    (tmp_path / "sigmoid_attention.py").write_text(_example())
    spec = "attention=sigmoid_attention:SigmoidAttention"
    result = _minitune("check", spec, cwd=tmp_path, extra_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = re.search(r"```\nattention = sigmoid_attention.*?```", DOC, re.S).group(0)
    for line in result.stdout.splitlines()[:14]:  # the page shows the real report
        assert line in shown, line
    run = _minitune(
        "train",
        "--config",
        "configs/tiny.toml",
        "--max-steps",
        "3",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        "--set",
        "model.attention=sigmoid_attention:SigmoidAttention",
        cwd=ROOT,
        extra_path=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert (
        '"attention": "sigmoid_attention:SigmoidAttention"'
        in (tmp_path / "run" / "last" / "config.json").read_text()
    )


def test_the_broken_version_fails_as_the_page_says(tmp_path):
    naive = _example().replace(
        "n = allowed.sum(dim=-1, keepdim=True).clamp(min=1)",
        "n = torch.full_like(scores[..., :1], k.shape[-2])",
    )
    assert naive != _example()
    (tmp_path / "naive.py").write_text(naive)
    result = _minitune(
        "check", "attention=naive:SigmoidAttention", cwd=tmp_path, extra_path=tmp_path
    )
    assert result.returncode == 1
    failed = [line.split(":")[0] for line in result.stdout.splitlines() if "FAIL" in line]
    expected = [line.split(":")[0] for line in DOC.splitlines() if line.startswith("  FAIL")]
    assert failed == expected and len(failed) == 3


def test_the_registry_table_on_the_page_names_every_built_in():
    from minitune.layers import registry

    for kind in registry.REGISTRY:
        for name in registry.names(kind):
            assert f"`{name}`" in DOC, (kind, name)
