"""What a run leaves for people to read: its record, its page and the best checkpoint's card.

    OUT/run.json         what ran, one entry per session (a --resume adds one): the command, the
                         values not at their defaults and where each came from, the start, the
                         machine, the log lines, how it ended (RunRecord, written by the commands)
    OUT/report.html      the run's page, built from the folder's own files only, so that
                         `minitune report OUT` rebuilds it at any time (write_report)
    OUT/best/README.md   the model card, written inside the checkpoint's atomic save
                         (model_card), with the evaluation's scores once the pipeline has them

The page reads run.json, metrics.jsonl (loss and exact match against steps and minutes),
report.json (the pipeline's evaluation), predictions.jsonl (every answer the evaluation scored)
and attention.png (one prompt's cross-attention). It is one self-contained HTML file: the pictures
are inlined, it needs no network and no JavaScript, and it reads on a phone (390 px, no sideways
scrolling). Top to bottom: how the run ended (when early), what ran, the curves, a table per
evaluated split (each task linked to its answers), the answers (up to 5 wrong and 3 right per
task, the first difference marked), the attention picture.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import shlex
import time
from pathlib import Path

from minitune.evaluate import SPLIT_NAMES

WRONG_SHOWN, RIGHT_SHOWN = 5, 3  # answers per task on the page
PROMPT_SHOWN = 600  # characters of a prompt on the page (the rest is cut, and says so)


def is_first_process() -> bool:
    """Under torchrun only the first process writes the record, the page and the pictures."""
    return os.environ.get("RANK", "0") == "0"


# ---- run.json: what ran ------------------------------------------------------------------------


class RunRecord:
    """One session of a run, kept in OUT/run.json next to the sessions before it (a --resume).

        record = run_record(run_cfg, ["train", "--max-steps", "5"], resumed=False)
        train(run_cfg.model, run_cfg.train, record=record)   # every log line is kept, and at
                                  # the end record.end(...) writes run.json and the page

    The file is written when the session ends (finished, interrupted, diverged), not at its start:
    a command that fails on its input leaves the run folder as it was. `page`: end() also builds
    the page (the pipeline's tuning phase builds it after its evaluation instead)."""

    def __init__(
        self,
        out: Path,
        command: str,
        settings: list[str],
        start: str,
        resumed: bool = False,
        phase: str = "",
        page: bool = True,
        say=print,
    ):
        from minitune.run.device import machine

        self.out, self.say, self.resumed, self.page = Path(out), say, resumed, page
        self.session = {
            "command": command,
            "phase": phase,  # a pipeline's: "the tuning phase"
            "resume_command": resume_command(command),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "settings": settings,  # "train.lr = 0.0025 (configs/laptop.toml)", ...
            "start": start,  # "random weights", or the checkpoint it starts from
            "machine": machine(),
            "log": [],
        }

    def log(self, line: str) -> None:
        """Print a line of the run's log (above the progress bar) and keep it for the page."""
        self.say(line)
        self.session["log"].append(line)

    def finish(self, summary: dict | None = None, error: str | None = None) -> None:
        """Record how the session ended (train()'s summary, or the error that stopped it) and
        write OUT/run.json: the earlier sessions of a resumed run, then this one."""
        self.session["end"] = {**(summary or {}), **({"error": error} if error else {})}
        if not is_first_process():
            return
        path = self.out / "run.json"
        sessions = read_run_json(self.out)["sessions"] if self.resumed else []
        _write_atomic(path, json.dumps({"sessions": [*sessions, self.session]}, indent=1))

    def end(self, cfg, summary: dict | None = None, error: str | None = None) -> None:
        """train()'s last words on the run (`cfg`: its TrainConfig): finish the record, then
        the page, with the attention picture of best/ unless the run stopped early (a signal's
        grace period is short; a diverged run has nothing new to show)."""
        self.finish(summary, error)
        if self.page:
            done = summary is not None and summary["stop_reason"] != "signal"
            write_page(self.out, attention_prompt(cfg) if done else None)


def run_record(run_cfg, argv: list[str], resumed: bool, phase: str = "", page: bool = True):
    """The record of this session of a run (`run_cfg`: its resolved RunConfig): the command as
    typed (`argv`), the values not at their defaults with their sources, and the start;
    `resumed`: the session continues the folder's run; `phase` names a pipeline's phase;
    `page`: the run's end also builds the page. Prints the settings and the data's source."""
    from tqdm import tqdm

    from minitune.data.stream import data_line

    settings = run_cfg.log_lines() if run_cfg.preset is not None else []
    if settings:  # a resumed run: its saved config, already reported
        tqdm.write("run config (values not at their defaults, and where each came from):")
        for line in settings:
            tqdm.write(f"  {line}")
    tqdm.write(data_line(run_cfg.train))
    init = run_cfg.train.init
    start = f"from {init}" if init else "random weights"
    if resumed:
        start = "resumed from its last/ (the start is the first session's)"
    say = tqdm.write  # above the progress bar
    out, command = Path(run_cfg.train.out), command_line(argv)
    return RunRecord(out, command, settings, start, resumed, phase, page, say)


def read_run_json(out: Path) -> dict:
    """OUT/run.json, or {"sessions": []} when the run did not record one."""
    try:
        return json.loads((Path(out) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"sessions": []}


def command_line(argv: list[str]) -> str:
    """The command as typed: ["train", "--max-steps", "5"] -> "minitune train --max-steps 5"."""
    return "minitune " + shlex.join(argv)


def resume_command(command: str) -> str:
    """The command that continues a run: its own, without --overwrite, with --resume.
    Example: "minitune train --out r --overwrite" -> "minitune train --out r --resume"."""
    words = [w for w in shlex.split(command) if w != "--overwrite"]
    return shlex.join(words if "--resume" in words else [*words, "--resume"])


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---- the model card ----------------------------------------------------------------------------


def model_card(folder: str | Path, info: dict, model_config: dict, scores: dict | None = None):
    """The README.md of a checkpoint: what it is, how it was made, its scores, its limits and
    how to load it, in Markdown. `info`: what config.json holds besides the model (its train
    config, step, examples seen, best validation loss); `scores`: the evaluation's report
    ({split: {"average": {...}}}) once there is one."""
    from minitune.config import TrainConfig

    folder, train = Path(folder), info.get("train", {})
    defaults = TrainConfig().to_dict()
    changed = [f"`{k} = {v!r}`" for k, v in train.items() if k in defaults and v != defaults[k]]
    objective = (
        "span-corruption pretraining"
        if train.get("objective") == "span"
        else ("instruction tuning")
    )
    start = f"from `{train['init']}`" if train.get("init") else "from random weights"
    m = model_config
    best = info.get("best_valid_loss")
    lines = [
        f"# minitune model: {folder}",
        "",
        f"An encoder-decoder Transformer (T5 family) trained with minitune by {objective}, "
        f"{start}. {m.get('n_encoder_layers', '?')} encoder and {m.get('n_decoder_layers', '?')} "
        f"decoder layers, d_model {m.get('d_model')}, {m.get('n_heads')} heads, d_ff "
        f"{m.get('d_ff')}, {m.get('position')} positions, a vocabulary of {m.get('vocab_size')}.",
        "",
        "## How it was made",
        "",
        f"- step {info.get('step', '?'):,} of its run, {info.get('examples_seen', 0):,} "
        "training examples seen",
        f"- settings not at their defaults: {', '.join(changed) or 'none'}",
        "- the whole run config is in `config.json` (`train`); the run's page is `../report.html`",
        "",
        "## Scores",
        "",
        "- validation loss (mean per target token): "
        + (f"{best:.4f}" if best is not None else "none measured"),
    ]
    for split, part in (scores or {}).items():
        a = part.get("average", {})
        kept = f", retention {a['retention']:.2f}" if a.get("retention") is not None else ""
        lines.append(
            f"- {SPLIT_NAMES.get(split, split)} (`{split}`): exact match {a['exact_match']:.1f}%, "
            f"token F1 {a['token_f1']:.1f}, over {a['tasks']} tasks and {a['n']} examples{kept}"
        )
    if not scores:
        lines.append("- not evaluated yet: `minitune eval --checkpoint DIR --data FILE`")
    lines += [
        "",
        "## Limits",
        "",
        "- A small model trained briefly on minitune's generated suite (data/README.md): it "
        "answers the suite's kinds of tasks, mostly as phrased in training; on tasks it never saw "
        "it scores near zero. It is for learning how instruction tuning works, not for use.",
        f"- Prompts longer than {train.get('max_source_length', 128)} tokens were cut in "
        f"training; answers are at most {train.get('max_target_length', 64)} tokens.",
        "",
        "## How to load it",
        "",
        "```bash",
        f'minitune generate --checkpoint {shlex.quote(str(folder))} "Sort these numbers: 5 2 9"',
        f"minitune chat --checkpoint {shlex.quote(str(folder))}",
        "```",
        "",
        "```python",
        "from minitune.run.checkpoint import load_model",
        "from minitune.tokenizer import Tokenizer",
        "",
        f'model, info = load_model("{folder}")',
        f'tok = Tokenizer("{folder}/tokenizer.model")',
        "```",
        "",
    ]
    return "\n".join(lines)


def add_scores_to_card(folder: Path, scores: dict) -> None:
    """Rewrite a checkpoint's README.md with the evaluation's scores (the rest of the folder,
    and its checked files, stay as they are)."""
    from minitune.run.checkpoint import read_config

    info = read_config(folder)
    _write_atomic(folder / "README.md", model_card(folder, info, info["model"], scores))


# ---- the attention picture -----------------------------------------------------------------------


def write_attention_picture(checkpoint: Path, prompt: str, path: Path, device: str = "cpu"):
    """One prompt's cross-attention (every layer and head), as the checkpoint answers it, into
    `path` (the page's picture; `minitune inspect` draws all of them). Returns the answer."""
    from minitune.kit.pictures import _pyplot, attention_grid_figure, read_attention
    from minitune.run.checkpoint import load_checkpoint

    model, tok, _ = load_checkpoint(str(checkpoint), device)
    seen = read_attention(model, tok, [*tok.encode(prompt)[:64], tok.eos_id])
    plt = _pyplot()
    fig = attention_grid_figure(
        [m[0] for m in seen["maps"]["cross"]],
        seen["target_labels"],
        seen["source_labels"],
        "cross attention: each answer token (row) reads the prompt (columns)",
    )
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return tok.decode(seen["answer"])


def attention_prompt(cfg) -> str | None:
    """A prompt for the page's attention picture (`cfg`: the run's TrainConfig): the first
    validation (else training) example of an instruction-tuning run; for pretraining, the start
    of its first document with three words replaced by a sentinel, as span corruption does
    ("The cat <extra_id_0> mat.")."""
    from minitune.data.formats import read_records
    from minitune.data.templates import format_prompt
    from minitune.run.paths import find_shipped

    if cfg.objective == "span":
        from minitune.data.documents import read_documents

        words = next(iter(read_documents(find_shipped(cfg.data[0]))), "").split()[:24]
        return " ".join([*words[:8], "<extra_id_0>", *words[11:]]) if len(words) > 11 else None
    files = [cfg.valid_data] if cfg.valid_data else list(cfg.data)
    for path in files:
        records = read_records(find_shipped(path))
        if records:
            return format_prompt(records[0].instruction, records[0].input)
    return None


def write_page(out: Path, prompt: str | None, device: str = "cpu") -> None:
    """The run's attention picture (best/ answering `prompt`; None: none drawn) and its page, by
    the first process; says where the page is."""
    if not is_first_process():
        return
    best = out / "best"
    if prompt and (best / "config.json").is_file():
        answer = write_attention_picture(best, prompt, out / "attention.png", device)
        (out / "attention.json").write_text(json.dumps({"prompt": prompt, "answer": answer}))
    print(f"the run's page: {write_report(out)}")


# ---- the page ----------------------------------------------------------------------------------


def write_report(out: str | Path) -> Path:
    """Build OUT/report.html from the run folder's own files; returns its path."""
    out = Path(out)
    record = read_run_json(out)
    metrics = _read_jsonl(out / "metrics.jsonl")
    evaluation = {}
    if (out / "report.json").is_file():
        evaluation = json.loads((out / "report.json").read_text(encoding="utf-8")).get("eval", {})
    predictions = _read_jsonl(out / "predictions.jsonl")
    body = [
        f"<h1>minitune run <code>{_e(out.name or str(out))}</code></h1>",
        _how_it_ended(record, metrics),
        _contents(evaluation, out),
        _what_ran(record, metrics, out),
        _curves(metrics),
        _evaluation(evaluation),
        _answers(evaluation, predictions),
        _attention(out),
        f"<p class=small>Built by <code>minitune report {_e(str(out))}</code> from the run "
        "folder's files (run.json, metrics.jsonl, report.json, predictions.jsonl, "
        "attention.png).</p>",
    ]
    path = out / "report.html"
    _write_atomic(path, PAGE.format(title=_e(f"minitune run {out.name}"), body="\n".join(body)))
    return path


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _e(text) -> str:
    return html.escape(str(text))


def _how_it_ended(record: dict, metrics: list[dict]) -> str:
    """A box at the top when the run stopped early (or its end was not recorded)."""
    sessions = record["sessions"]
    if not sessions:
        return (
            "<p class=warn>No run.json: this run did not record its command and machine (it "
            "was not started by a minitune command).</p>"
        )
    end = sessions[-1].get("end")
    if end is None:
        return "<p class=warn>This session's end was not recorded.</p>"
    if end.get("error"):
        return f"<p class=bad><b>Stopped early:</b> {_e(end['error'])}</p>"
    if end.get("stop_reason") != "signal":  # it ran to max_steps or max_minutes
        return ""
    from minitune.run.stop_signals import signal_name

    resume = sessions[-1].get("resume_command", "")
    how = f" Continue it with <code>{_e(resume)}</code>." if resume else ""
    return (
        f"<p class=bad><b>Stopped early by {signal_name(end['signal'])}</b> at step "
        f"{end.get('step', 0):,}; last/ holds that step.{how}</p>"
    )


def _contents(evaluation: dict, out: Path) -> str:
    links = ["<a href='#ran'>what ran</a>", "<a href='#curves'>curves</a>"]
    if evaluation:
        links += ["<a href='#evaluation'>evaluation</a>", "<a href='#answers'>answers</a>"]
    links.append("<a href='#attention'>attention</a>")
    if (out / "pretrain" / "report.html").is_file():
        links.append("<a href='pretrain/report.html'>the pretraining phase's page</a>")
    return "<nav>" + " · ".join(links) + "</nav>"


def _what_ran(record: dict, metrics: list[dict], out: Path) -> str:
    """The command, settings, start and machine of each session, then the totals."""
    parts = ["<h2 id=ran>What ran</h2>"]
    for i, s in enumerate(record["sessions"]):
        if len(record["sessions"]) > 1:
            parts.append(f"<h3>Session {i + 1} of {len(record['sessions'])}</h3>")
        m, end = s.get("machine", {}), s.get("end", {})
        precision = end.get("precision")
        if precision:
            why = end.get("precision_why")
            precision = f"{precision} ({why})" if why else f"{precision} (as set, not auto)"
        machine = (
            f"{m.get('cpu')} ({', '.join(m.get('cpu_features', [])) or 'no AVX2'}), "
            f"{m.get('cores')} cores, torch {m.get('torch')} on {m.get('torch_threads')} threads"
            + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        )
        phase = f" ({s['phase']})" if s.get("phase") else ""
        rows = [
            ("command", f"<code>{_e(s.get('command'))}</code>{_e(phase)}"),
            ("started", _e(s.get("started"))),
            ("start", _e(s.get("start"))),
            ("machine", _e(machine)),
            ("device", _e(f"{end.get('device', '?')}, {end.get('processes', 1)} process(es)")),
            ("precision", _e(precision or "?")),
        ]
        if end.get("step") is not None:
            trained = f"{end['step']:,} steps, {end.get('examples', 0):,} examples"
            if end.get("minutes"):
                trained += (
                    f", {end['minutes']:.1f} min of training (all sessions), "
                    f"{end.get('examples_per_s', 0):.1f} examples/s"
                )
            rows.append(("trained", _e(f"{trained} (ended by {end.get('stop_reason')})")))
        parts.append(_table(rows))
        settings = s.get("settings") or []
        if settings:
            items = "".join(f"<li><code>{_e(x)}</code></li>" for x in settings)
            parts.append(
                f"<p>Values not at their defaults, and where each came from:</p><ul>{items}</ul>"
            )
        log = s.get("log") or []
        if log:
            parts.append(
                f"<details><summary>the log ({len(log)} lines)</summary><pre>"
                + _e("\n".join(log))
                + "</pre></details>"
            )
    if not record["sessions"] and metrics:
        last = [r for r in metrics if "loss" in r][-1:]
        if last:
            parts.append(f"<p>{last[0]['step']:,} steps in metrics.jsonl.</p>")
    return "\n".join(parts)


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class=facts>{body}</table>"


def _curves(metrics: list[dict]) -> str:
    """Loss against steps and minutes (train and validation), exact match against minutes."""
    train = [r for r in metrics if "loss" in r]
    if not train:
        return "<h2 id=curves>Curves</h2><p>No training rows in metrics.jsonl yet.</p>"
    from minitune.kit.pictures import _pyplot

    plt = _pyplot()
    from minitune.run.metrics_log import draw_losses

    scored = [r for r in metrics if "valid_exact_match" in r]
    panels = 3 if scored else 2
    fig, axes = plt.subplots(panels, 1, figsize=(6, 3.2 * panels))
    draw_losses(axes[0], axes[1], metrics)
    for ax in axes[:2]:
        ax.set_ylabel("loss per target token")
        ax.grid(alpha=0.3)
    axes[0].set_title("loss")
    if scored:
        ax = axes[2]
        minutes = [r["elapsed_s"] / 60 for r in scored]
        ax.plot(minutes, [r["valid_exact_match"] for r in scored], "o-")
        n = scored[-1]["valid_scored"]
        ax.set(xlabel="minutes", ylabel="exact match, %", ylim=(0, 100))
        ax.set_title(f"exact match on {n} validation examples (greedy)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    cost = ""
    if scored:
        total = sum(r.get("score_s", 0) for r in scored)
        cost = (
            f"<p class=small>Scoring {scored[-1]['valid_scored']} validation examples took "
            f"{total:.1f} s over {len(scored)} evaluations, left out of the training clock.</p>"
        )
    return (
        "<h2 id=curves>Curves</h2>"
        + _picture(fig, "loss against steps and minutes, exact match against minutes")
        + cost
    )


def _picture(fig, alt: str) -> str:
    """A matplotlib figure as an inlined PNG."""
    from minitune.kit.pictures import _pyplot

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    _pyplot().close(fig)
    return _png(buffer.getvalue(), alt)


def _png(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{encoded}'>"


def _anchor(split: str, task: str) -> str:
    return f"a-{split}-{task}"


def _colour(em: float) -> str:
    """A cell's background: red at 0 (the eye finds it), through yellow, to green at 100."""
    if em == 0:
        return "background:#f4a3a3;font-weight:bold"
    return f"background:hsl({round(1.2 * em)},70%,85%)"


def _evaluation(evaluation: dict) -> str:
    """A table per split: n, EM, F1, ROUGE-L, code pass per task; the split's average."""
    if not evaluation:
        return (
            "<h2 id=evaluation>Evaluation</h2><p>Not evaluated in this folder: <code>minitune "
            "pipeline</code> evaluates after training; <code>minitune eval --checkpoint "
            "OUT/best --data FILE</code> scores any file.</p>"
        )
    parts = [
        "<h2 id=evaluation>Evaluation</h2><p class=small>Exact match (EM), token F1 and "
        "ROUGE-L in %, per task; red: no exact match. A task's name leads to its answers.</p>"
    ]
    for split, part in evaluation.items():
        a = part["average"]
        kept = a.get("retention")
        kept = f"; retention {kept:.2f} of the same tasks' test scores" if kept is not None else ""
        parts.append(
            f"<h3>{_e(SPLIT_NAMES.get(split, split))} <code>{_e(split)}</code></h3>"
            f"<p>average over {a['tasks']} tasks: <b>EM {a['exact_match']:.1f}</b>, "
            f"F1 {a['token_f1']:.1f}{_e(kept)}</p>"
        )
        rows = []
        for task, row in part["tasks"].items():
            code = f"{row['code_pass']:.0f}" if "code_pass" in row else ""
            em = row["exact_match"]
            rows.append(
                f"<tr><td class=task><a href='#{_anchor(split, task)}'>{_e(task)}</a></td>"
                f"<td>{row['n']}</td><td style='{_colour(em)}'>{em:.1f}</td>"
                f"<td>{row['token_f1']:.1f}</td><td>{row['rouge_l']:.1f}</td><td>{code}</td></tr>"
            )
        parts.append(
            "<table class=scores><tr><th>task</th><th>n</th><th>EM</th><th>F1</th>"
            "<th>R-L</th><th>code</th></tr>" + "".join(rows) + "</table>"
        )
    return "\n".join(parts)


def first_difference(answer: str, expected: str) -> int | None:
    """Where `answer` first differs from `expected` (None: equal).
    Example: ("1 2 5", "1 2 3") -> 4; ("1 2", "1 2 3") -> 3."""
    if answer == expected:
        return None
    for i, (a, b) in enumerate(zip(answer, expected, strict=False)):
        if a != b:
            return i
    return min(len(answer), len(expected))


def _marked(answer: str, expected: str) -> str:
    """The answer with its first difference from the expected one marked."""
    i = first_difference(answer, expected)
    if i is None:
        return _e(answer)
    if not answer:
        return "<mark>(empty)</mark>"
    if i >= len(answer):  # the answer stops short
        return _e(answer) + "<mark title='the answer ends here'>&#8230;</mark>"
    return _e(answer[:i]) + f"<mark>{_e(answer[i])}</mark>" + _e(answer[i + 1 :])


def _answers(evaluation: dict, predictions: list[dict]) -> str:
    """For every evaluated task: up to WRONG_SHOWN wrong and RIGHT_SHOWN right answers."""
    if not evaluation:
        return ""
    by_task: dict[tuple[str, str], list[dict]] = {}
    for p in predictions:
        by_task.setdefault((p["split"], p["task"]), []).append(p)
    parts = [
        "<h2 id=answers>Answers</h2><p class=small>Per task, up to "
        f"{WRONG_SHOWN} wrong and {RIGHT_SHOWN} right answers; in a wrong answer the first "
        "character that differs from the expected one is marked. Every answer is in "
        "predictions.jsonl.</p>"
    ]
    for split, part in evaluation.items():
        for task, row in part["tasks"].items():
            items = by_task.get((split, task), [])
            wrong = [p for p in items if not p["exact_match"]][:WRONG_SHOWN]
            right = [p for p in items if p["exact_match"]][:RIGHT_SHOWN]
            parts.append(
                f"<section id='{_anchor(split, task)}'><h3>{_e(task)} <span class=small>"
                f"({_e(split)}, EM {row['exact_match']:.1f}%, {len(items)} answers)</span></h3>"
            )
            if not items:
                parts.append("<p>No predictions.jsonl entries for this task.</p>")
            for p in wrong + right:
                parts.append(_answer(p))
            parts.append("<p class=small><a href='#evaluation'>back to the tables</a></p>")
            parts.append("</section>")
    return "\n".join(parts)


def _answer(p: dict) -> str:
    prompt = p["prompt"]
    cut = ""
    if len(prompt) > PROMPT_SHOWN:
        cut = f" (first {PROMPT_SHOWN} of {len(prompt)} characters)"
        prompt = prompt[:PROMPT_SHOWN]
    right = bool(p["exact_match"])
    return (
        f"<div class='answer {'right' if right else 'wrong'}'>"
        f"<p class=small>{'right' if right else 'wrong'}{_e(cut)}</p>"
        f"<pre class=prompt>{_e(prompt)}</pre>"
        f"<p class=label>expected</p><pre>{_e(p['reference'])}</pre>"
        f"<p class=label>answer</p><pre>{_marked(p['prediction'], p['reference'])}</pre></div>"
    )


def _attention(out: Path) -> str:
    path = out / "attention.png"
    if not path.is_file():
        return "<h2 id=attention>What the model looks at</h2><p>No attention.png here.</p>"
    caption = ""
    if (out / "attention.json").is_file():
        seen = json.loads((out / "attention.json").read_text(encoding="utf-8"))
        caption = (
            f"<p>Prompt:</p><pre>{_e(seen['prompt'])}</pre><p>The model's answer:</p>"
            f"<pre>{_e(seen['answer']) or '(empty)'}</pre>"
        )
    return (
        "<h2 id=attention>What the model looks at</h2>"
        "<p class=small>Cross-attention of the best checkpoint: one panel per layer (rows) and "
        "head (columns); each row of a panel is an answer token, each column a prompt token, and "
        "a bright cell is where that answer token read from. <code>minitune inspect</code> draws "
        "the self-attention too.</p>" + caption + _png(path.read_bytes(), "cross-attention heatmap")
    )


PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8>
<meta name=viewport content='width=device-width, initial-scale=1'>
<title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 8px; max-width: 60em;
  color: #222; overflow-wrap: anywhere; }}
h1 {{ font-size: 1.35em; }} h2 {{ font-size: 1.2em; border-bottom: 1px solid #ccc; }}
h3 {{ font-size: 1.02em; margin-bottom: 0.2em; }}
img {{ max-width: 100%; height: auto; display: block; }}
pre {{ white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f6f6; padding: 4px 6px;
  margin: 0 0 4px; font-size: 13px; }}
code {{ overflow-wrap: anywhere; font-size: 13px; }}
table {{ border-collapse: collapse; max-width: 100%; }}
td, th {{ border: 1px solid #ddd; padding: 2px 5px; text-align: left; vertical-align: top; }}
table.scores {{ width: 100%; font-size: 13px; }}
table.scores td:not(.task) {{ text-align: right; white-space: nowrap; }}
table.scores th {{ white-space: nowrap; padding: 2px 3px; }}
table.facts th {{ white-space: nowrap; }}
mark {{ background: #ffd24d; outline: 1px solid #c90; }}
.small {{ font-size: 12px; color: #555; }}
.label {{ margin: 2px 0 0; font-size: 12px; color: #555; }}
.answer {{ border-left: 4px solid #bbb; padding-left: 6px; margin: 8px 0; }}
.answer.wrong {{ border-color: #d33; }} .answer.right {{ border-color: #3a3; }}
.bad {{ background: #fde2e2; border: 1px solid #d33; padding: 6px; }}
.warn {{ background: #fff4d6; border: 1px solid #c90; padding: 6px; }}
nav {{ font-size: 13px; }}
</style></head>
<body>
{body}
</body></html>
"""
