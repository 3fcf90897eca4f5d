"""The run's page (report.html), its record (run.json) and the model card: what a run writes
for people, checked in its HTML here (a real browser renders it in the slow test at the end)."""

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import import_or_skip
from test_workflow import tiny_args

from minitune.cli import main
from minitune.evaluate import Scored, summarize
from minitune.run.report import RunRecord, first_difference, resume_command, write_report


def images(page: str) -> list[bytes]:
    """The inlined pictures of a page, decoded."""
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([^']+)'", page)]


def test_a_train_run_writes_its_record_page_and_model_card(tmp_path, capsys):
    import_or_skip("matplotlib")
    out = tmp_path / "run"
    args = ["train", *tiny_args(tmp_path, out, steps=4), "--set", "train.score_valid=6"]
    assert main(args) == 0
    assert f"the run's page: {out / 'report.html'}" in capsys.readouterr().out

    record = json.loads((out / "run.json").read_text())
    (session,) = record["sessions"]
    assert session["command"] == "minitune " + " ".join(args)
    assert "train.max_steps = 4 (--max-steps)" in session["settings"]
    assert "train.score_valid = 6 (--set train.score_valid=6)" in session["settings"]
    assert session["start"] == "random weights" and session["machine"]["cores"] >= 1
    assert session["end"]["step"] == 4 and session["end"]["stop_reason"] == "max_steps"
    assert session["end"]["precision"] == "fp32" and session["end"]["device"] == "cpu"
    assert any(line.startswith("model: ") for line in session["log"])

    # exact match on a validation sample at each evaluation (steps 2 and 4), for the curve
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in rows if "valid_exact_match" in r]
    assert [r["step"] for r in scored] == [2, 4]
    assert all(r["valid_scored"] == 6 and 0 <= r["valid_exact_match"] <= 100 for r in scored)

    # the model card is in best/ (written in its save, not among its checked files), not last/
    card = (out / "best" / "README.md").read_text()
    assert card.startswith(f"# minitune model: {out / 'best'}") and "## How to load it" in card
    assert "validation loss (mean per target token): " in card
    assert "README.md" not in json.loads((out / "best" / "config.json").read_text())["files"]
    assert not (out / "last" / "README.md").exists()

    page = (out / "report.html").read_text()
    assert "<script" not in page and not re.search(r"(src|href)=['\"]?https?:", page)
    assert "<code>minitune train --config tiny --data" in page and "Stopped early" not in page
    assert "train.score_valid = 6" in page and "fp32" in page and "cross-attention" in page
    pictures = images(page)
    assert len(pictures) == 2 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pictures)

    # `minitune report` rebuilds the same page from the folder's files alone
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").read_text() == page

    # a resumed run adds a session; --overwrite removes the page, record and predictions
    (out / "predictions.jsonl").write_text("{}\n")
    assert main(["train", *tiny_args(tmp_path, out, steps=4), "--overwrite"]) == 0
    assert len(json.loads((out / "run.json").read_text())["sessions"]) == 1
    assert not (out / "predictions.jsonl").exists()


def test_a_resumed_run_keeps_its_first_sessions(tmp_path, monkeypatch):
    from conftest import interrupt_at

    out = tmp_path / "run"
    interrupt_at(monkeypatch, 3)  # Ctrl-C during step 3: it stops after that step
    assert main(["train", *tiny_args(tmp_path, out, steps=4)]) == 130
    monkeypatch.undo()
    first = json.loads((out / "run.json").read_text())["sessions"]
    assert first[0]["end"]["stop_reason"] == "signal" and first[0]["end"]["step"] == 3
    page = (out / "report.html").read_text()
    assert "Stopped early by SIGINT</b> at step 3" in page and "--resume" in page
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    sessions = json.loads((out / "run.json").read_text())["sessions"]
    assert sessions[0] == first[0] and len(sessions) == 2
    assert sessions[1]["end"]["step"] == 4 and "--resume" in sessions[1]["command"]
    assert "Session 2 of 2" in (out / "report.html").read_text()


def test_a_diverged_run_says_so_at_the_top_of_its_page(tmp_path, capsys):
    out = tmp_path / "run"
    blow_up = ["--set", "train.lr=1e30", "--set", "train.warmup_steps=1"]
    assert main(["train", *tiny_args(tmp_path, out), *blow_up, "--set", "train.clip_grad=0"]) == 1
    (session,) = json.loads((out / "run.json").read_text())["sessions"]
    assert session["end"]["error"].startswith("diverged: ")
    page = (out / "report.html").read_text()
    assert page.index("Stopped early:") < page.index("What ran")


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def scored(split, task, prompt, reference, prediction) -> Scored:
    em = float(prediction == reference)
    return Scored(split, task, prompt, reference, prediction, em, em, em)


def evaluated_folder(folder: Path) -> Path:
    """A run folder as the pipeline leaves it, written by hand: three tasks of test (no exact
    match, all right, 2 of 9), one of contrast; an interrupted first session."""
    items = [
        scored("test", "sort_numbers", f"Sort: {i} 1", f"1 {i}", f"{i} 1") for i in range(2, 9)
    ]
    items += [scored("test", "uppercase", f"Upper: a{i}", f"A{i}", f"A{i}") for i in range(4)]
    items += [
        scored("test", "list_max", f"Max: {i} 9", "9", "9" if i < 2 else "") for i in range(9)
    ]
    items += [scored("contrast", "list_max", "Max: <b>7</b> 2", "7", "72")]
    folder.mkdir()
    report = summarize(items)
    (folder / "report.json").write_text(json.dumps({"eval": report}))
    (folder / "predictions.jsonl").write_text("".join(json.dumps(s.__dict__) + "\n" for s in items))
    rows = [{"step": s, "loss": 5.0 / s, "elapsed_s": 6.0 * s} for s in range(1, 11)]
    rows += [{"step": 10, "valid_loss": 0.9, "elapsed_s": 60.0}]
    rows += [
        {
            "step": 10,
            "valid_exact_match": 20.0,
            "valid_scored": 5,
            "score_s": 1.5,
            "elapsed_s": 60.0,
        }
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = RunRecord(
        folder,
        "minitune pipeline --out x",
        ["train.lr = 0.01 (--set)"],
        "random weights",
        say=lambda line: None,
    )
    record.log("model: 0.15M parameters on cpu, fp32")
    record.finish(
        {"step": 10, "stop_reason": "signal", "signal": 15, "minutes": 1.0, "examples": 80}
    )
    return folder


def answers(page: str, anchor: str) -> str:
    """The answers section of one task."""
    start = page.index(f"id='{anchor}'")
    return page[start : page.index("</section>", start)]


def test_the_page_shows_every_split_task_and_wrong_answer(tmp_path):
    folder = evaluated_folder(tmp_path / "run")
    page = write_report(folder).read_text()
    assert "Stopped early by SIGTERM</b> at step 10" in page
    assert "minitune pipeline --out x --resume" in page
    assert "<script" not in page
    # a table per split; each task leads to its answers section
    for split, task in [
        ("test", "sort_numbers"),
        ("test", "uppercase"),
        ("test", "list_max"),
        ("contrast", "list_max"),
    ]:
        assert f"href='#a-{split}-{task}'" in page and f"id='a-{split}-{task}'" in page
    # the zeros are red; 100 is not
    assert "style='background:#f4a3a3;font-weight:bold'>0.0</td>" in page
    assert "style='background:hsl(120,70%,85%)'>100.0</td>" in page
    # per task at most 5 wrong and 3 right answers, the first difference marked
    section = answers(page, "a-test-sort_numbers")
    assert section.count("class='answer wrong'") == 5 and "class='answer right'" not in section
    assert "<pre><mark>3</mark> 1</pre>" in section  # "3 1" against "1 3"
    section = answers(page, "a-test-list_max")
    assert section.count("class='answer wrong'") == 5 and section.count("class='answer right'") == 2
    assert "<mark>(empty)</mark>" in section
    assert "Max: &lt;b&gt;7&lt;/b&gt; 2" in page  # prompts are escaped, not markup
    assert "<pre>7<mark>2</mark></pre>" in page  # the answer runs past the expected "7"
    assert len(images(page)) == 1  # the curves (no attention.png in this folder)
    assert "Scoring 5 validation examples took 1.5 s over 1 evaluations" in page


def test_first_difference():
    assert first_difference("1 2 5", "1 2 3") == 4
    assert first_difference("1 2", "1 2 3") == 3
    assert first_difference("1 2 3 4", "1 2 3") == 5
    assert first_difference("same", "same") is None


def test_resume_command():
    assert resume_command("minitune train --out r --overwrite") == "minitune train --out r --resume"
    assert resume_command("minitune train --resume") == "minitune train --resume"


# ---- in a real browser (slow) ----------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# A page that loads the report in a phone-wide frame (390 px) and writes what it finds into its
# own DOM, which `chromium --dump-dom` prints: the widest element, the pictures' decoded sizes,
# and the EM cells whose task has no answers section.
CHECKER = """<!doctype html><html><body>
<iframe id=f src='report.html' style='width:390px;height:800px;border:0'></iframe>
<pre id=result></pre>
<script>
window.addEventListener('load', () => {
  const doc = document.getElementById('f').contentDocument;
  const images = [...doc.images].map(i => [i.naturalWidth, i.naturalHeight]);
  const missing = [];
  for (const row of doc.querySelectorAll('table.scores tr')) {
    const link = row.querySelector('a');
    if (!link) continue;
    const em = parseFloat(row.children[2].textContent);
    const target = doc.getElementById(link.getAttribute('href').slice(1));
    if (em < 100 && (!target || !target.querySelector('.answer'))) missing.push(link.textContent);
  }
  const rows = doc.querySelectorAll('table.scores tr').length;
  document.getElementById('result').textContent = JSON.stringify({
    scrollWidth: doc.documentElement.scrollWidth, images, missing, rows});
});
</script></body></html>
"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def screenshot(page: Path, png: Path, width: int = 390, height: int = 2400) -> None:
    """`page` rendered headless by Chromium, `width` × `height` pixels, into `png`."""
    chromium(f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri())


@pytest.mark.slow
def test_the_page_of_a_pipeline_run_in_a_real_browser(tmp_path):
    """A short pipeline run's page, rendered by headless Chromium: the screenshot is not blank,
    the pictures decode, nothing is wider than a phone, every task below 100% has answers."""
    import_or_skip("matplotlib")
    assert CHROMIUM, "chromium is not installed (.ci/run installs Debian's chromium)"
    out = tmp_path / "pipe"
    args = ["pipeline", "--config", "tiny", "--max-steps", "20", "--limit", "6"]
    assert main([*args, "--out", str(out), "--no-progress", "--set", "train.eval_every=10"]) == 0
    page = out / "report.html"

    png = tmp_path / "page.png"
    screenshot(page, png)
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (2400, 390)
    assert pixels.std() > 0.05  # not blank: text, tables and pictures
    if os.environ.get("MINITUNE_SCREENSHOT_TO"):  # how the README's picture is taken
        shutil.copy(png, os.environ["MINITUNE_SCREENSHOT_TO"])

    (out / "check.html").write_text(CHECKER)
    dom = chromium(
        "--allow-file-access-from-files",
        "--virtual-time-budget=5000",
        "--dump-dom",
        (out / "check.html").as_uri(),
    ).stdout
    found = json.loads(re.search(r"<pre id=\"result\">(.*?)</pre>", dom, re.S).group(1))
    assert found["scrollWidth"] <= 390  # no sideways scrolling on a phone
    assert len(found["images"]) == 2 and all(w > 100 and h > 100 for w, h in found["images"])
    evaluated = json.loads((out / "report.json").read_text())["eval"]
    assert found["rows"] == sum(len(p["tasks"]) + 1 for p in evaluated.values())  # + headers
    assert found["missing"] == []
