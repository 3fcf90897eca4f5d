"""The docs hold true: every relative link of the project's markdown pages (the README, docs/,
tutorials/, ...) leads to a file (and a heading) that exists; docs/data.md's example runs; and
docs/extending.md's worked example runs as written: the code passes the kit, the broken version
fails it as the page says, and a model trains with it by name."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
FOLDERS = ("docs", "tutorials", "benchmarks", "data", "tokenizer", "checkpoints")
PAGES = [ROOT / "README.md", *(p for d in FOLDERS for p in sorted((ROOT / d).rglob("*.md")))]


def _prose(markdown: str) -> str:
    """The page without its fenced code blocks (a `# comment` there is no heading)."""
    return re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to
    hyphens ("## Run folders and --resume" -> "run-folders-and---resume")."""
    headings = re.findall(r"^#{1,6} (.+)$", _prose(page.read_text(encoding="utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page):
    links = re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text(encoding="utf-8")))
    for link in links:
        if re.match(r"[a-z]+:", link):  # https:, mailto: ...
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.relative_to(ROOT)}: {link} leads nowhere"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), f"{page.relative_to(ROOT)}: no heading #{anchor}"


def test_data_page_example_runs():
    page = (ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(example, "docs/data.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert namespace["batch"]["input_ids"].shape[0] == 8
    assert namespace["report"].n_examples == 13500


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
