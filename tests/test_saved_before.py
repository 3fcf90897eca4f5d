"""Checkpoints saved by an earlier minitune still load, with the same numbers.

`tests/fixtures/before_layout/` was written by the tree before the layout change (issue 39, commit
84b4c2b), with its own command line: `base/` is the best/ of `minitune train --config tiny --data
small.jsonl --max-steps 2`, `lora/` the best/ of `minitune train --config tiny --init
base_run/last --lora-rank 2 --max-steps 2` (LoRA adapters and a pointer to their base), and
`expected.json` what that tree's model answered to one prompt: the first decoder position's
first 8 logits and 6 greedy tokens. The only edit a test makes is the one a user makes after
moving a LoRA base: the adapter's config names its base by an absolute path of the machine that
saved it, so the test points it at its own copy of `base/` (the base's weights hash is kept and
checked).
"""

import json
import shutil
from pathlib import Path

import pytest
import torch

from minitune.run.checkpoint import load_checkpoint

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "before_layout"
PROMPT = "Sort these numbers: 5 2 9"


def answers(folder: Path) -> dict:
    """The first decoder position's first 8 logits and 6 greedy tokens of `PROMPT`."""
    model, tok, _ = load_checkpoint(str(folder), "cpu", "off")
    ids = torch.tensor([[*tok.encode(PROMPT), tok.eos_id]])
    with torch.no_grad():
        logits = model(ids, torch.zeros(1, 1, dtype=torch.long))
        greedy = model.generate(ids, max_new_tokens=6)
    return {"first_logits": logits[0, 0, :8].tolist(), "greedy": greedy[0].tolist()}


@pytest.mark.parametrize("name", ["base", "lora"])
def test_a_checkpoint_saved_before_the_layout_change_loads_unchanged(tmp_path, name):
    expected = json.loads((FIXTURES / "expected.json").read_text())[name]
    shutil.copytree(FIXTURES / "base", tmp_path / "base")
    folder = tmp_path / name
    if name == "lora":
        shutil.copytree(FIXTURES / "lora", folder)
        config = json.loads((folder / "config.json").read_text())
        assert config["base"]["path"].endswith("base_run/last")  # the saving machine's path
        config["base"]["path"] = str(tmp_path / "base")
        (folder / "config.json").write_text(json.dumps(config, indent=2))
    seen = answers(folder)
    assert seen["greedy"] == expected["greedy"]
    assert seen["first_logits"] == pytest.approx(expected["first_logits"], abs=1e-4)
    if name == "lora":  # the adapters change the numbers: this is not the base alone
        base = json.loads((FIXTURES / "expected.json").read_text())["base"]
        assert seen["first_logits"] != pytest.approx(base["first_logits"], abs=1e-4)
