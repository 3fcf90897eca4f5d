import json
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minitune.cli import main
from minitune.data.batching import collate, encode_records, length_bucketed_batches
from minitune.data.codecheck import check_programs
from minitune.data.documents import read_documents
from minitune.data.formats import DataError, Record, read_records
from minitune.data.span_corruption import reconstruct, span_corrupt
from minitune.data.templates import format_prompt
from minitune.suite import families_code, families_shared, families_symbolic, lexicon, tasks
from minitune.suite.tasks import (
    HELDOUT_CLUSTER,
    SPLITS,
    all_families,
    draw_training_examples,
    evaluation_exclusions,
    generate_suite,
    render,
    training_only_families,
    write_training_set,
)
from minitune.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


@pytest.fixture(scope="module")
def shipped() -> dict[str, list[Record]]:
    return {split: read_records(DATA / f"{split}.jsonl") for split in SPLITS}


# ---- the suite ---------------------------------------------------------------------------


def test_suite_shape():
    families = all_families()
    assert len(families) >= 24
    assert all(len(f.phrasings) >= 5 for f in families)
    heldout = [f for f in families if f.cluster == HELDOUT_CLUSTER]
    assert len(heldout) >= 3
    clusters = {f.cluster for f in families}
    for cluster in (
        "translation",
        "summarization",
        "qa",
        "code",
        "dialogue",
        "classification",
        "arithmetic",
        "strings",
        "lists",
        "extraction",
        "format",
    ):
        assert cluster in clusters
    assert lexicon.ENTRIES >= 300


def test_the_readers_do_not_import_the_suite_generators():
    """minitune/data/ reads, batches and checks examples; minitune/suite/ makes them. The
    readers never import the generators, so a learner can leave suite/ unread. stream.py, the
    run's batch stream, is no reader: with train.fresh_per_task it asks the suite for a fresh
    draw (an import inside that function), as train_data.py did before it moved into data/."""
    import ast

    for path in (ROOT / "minitune" / "data").glob("*.py"):
        if path.name == "stream.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if m and m.startswith("minitune.suite")], path.name


def test_generator_is_deterministic_and_matches_the_shipped_files(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "minitune",
            "data",
            "generate",
            "--out",
            str(tmp_path),
            "--seed",
            "0",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "train.jsonl: 13500 examples, 27 tasks" in out.stdout
    for name in [*(f"{s}.jsonl" for s in SPLITS), "pretrain.txt"]:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


def test_another_seed_gives_other_examples():
    a = generate_suite(
        0, {"train": 5, "valid": 1, "test": 1, "heldout_phrasings": 1, "heldout_tasks": 1}
    )
    b = generate_suite(
        1, {"train": 5, "valid": 1, "test": 1, "heldout_phrasings": 1, "heldout_tasks": 1}
    )
    assert [e.to_json() for e in a["train"]] != [e.to_json() for e in b["train"]]


def test_splits_are_disjoint_and_held_out_things_stay_out(shipped):
    train = shipped["train"]
    train_content = {(r.meta["task"], r.input, r.output) for r in train}
    train_prompts = {format_prompt(r.instruction, r.input) for r in train}
    train_templates = {r.meta["template"] for r in train}
    for split in ("valid", "test", "heldout_phrasings", "heldout_tasks"):
        for r in shipped[split]:
            assert r.meta["split"] == split
            assert format_prompt(r.instruction, r.input) not in train_prompts, r.where
            if r.input:  # phrasings with the input inline leave this field empty
                assert (r.meta["task"], r.input, r.output) not in train_content, r.where
    prompts = Counter(format_prompt(r.instruction, r.input) for s in SPLITS for r in shipped[s])
    assert max(prompts.values()) == 1  # no prompt appears twice anywhere
    assert not {r.meta["template"] for r in shipped["heldout_phrasings"]} & train_templates
    assert not {r.meta["task"] for r in shipped["heldout_tasks"]} & {r.meta["task"] for r in train}
    assert {r.meta["cluster"] for r in shipped["heldout_tasks"]} == {HELDOUT_CLUSTER}
    assert {r.meta["template"] for r in shipped["test"]} <= train_templates


def test_every_family_and_phrasing_is_used(shipped):
    templates = defaultdict(set)
    for split in SPLITS:
        for r in shipped[split]:
            templates[r.meta["task"]].add(r.meta["template"])
    for family in all_families():
        assert len(templates[family.name]) == len(family.phrasings), family.name


def test_every_shipped_code_answer_passes_its_tests(shipped):
    programs = [
        {"code": r.output, "entry_point": r.meta["entry_point"], "tests": r.meta["tests"]}
        for split in SPLITS
        for r in shipped[split]
        if r.meta["cluster"] == "code"
    ]
    assert len(programs) > 1000
    results = check_programs(programs, batch_time_limit=120)
    failures = [
        (p["code"], r.error) for p, r in zip(programs, results, strict=True) if not r.passed
    ]
    assert not failures, failures[:3]


def test_code_check_catches_wrong_slow_and_broken_code():
    tests = [[[2], 4], [[5], 10]]
    programs = [
        {"code": "def double(x):\n    return x * 2\n", "entry_point": "double", "tests": tests},
        {"code": "def double(x):\n    return x + 2\n", "entry_point": "double", "tests": tests},
        {
            "code": "def double(x):\n    while True:\n        pass\n",
            "entry_point": "double",
            "tests": tests,
        },
        {"code": "def double(x) return", "entry_point": "double", "tests": tests},
        {"code": "import os\nos._exit(1)\n", "entry_point": "double", "tests": tests},
    ]
    results = check_programs(programs, time_limit=1)
    assert [r.passed for r in results] == [True, False, False, False, False]
    assert results[1].n_passed == 1 and "double(5,) returned 7, expected 10" in results[1].error
    assert "TimeoutError" in results[2].error and "SyntaxError" in results[3].error


def test_pretraining_corpus_documents():
    docs = read_documents(DATA / "pretrain.txt")
    assert len(docs) == 4000
    assert any("\n" in d for d in docs)  # conversations and code keep their lines
    assert any("l'" in d or "Le " in d for d in docs)  # French sentences


def test_translation_grammar_worked_examples():
    from minitune.suite.families_language import render_noun_phrase, sentence_pair

    noun = {n.en: n for n in lexicon.NOUNS}
    adj = {a.en: a for a in lexicon.ADJECTIVES}
    cases = [
        ((noun["car"], adj["red"], False, True), ("the red car", "la voiture rouge")),
        ((noun["tree"], adj["big"], False, True), ("the big tree", "le grand arbre")),
        ((noun["school"], None, False, True), ("the school", "l'école")),
        ((noun["man"], None, False, True), ("the man", "l'homme")),
        ((noun["horse"], adj["white"], True, True), ("the white horses", "les chevaux blancs")),
        ((noun["woman"], adj["happy"], False, False), ("a happy woman", "une femme heureuse")),
        ((noun["apple"], None, False, False), ("an apple", "une pomme")),
        ((noun["tree"], adj["small"], False, False), ("a small tree", "un petit arbre")),
    ]
    for args, expected in cases:
        assert render_noun_phrase(*args) == expected
    rng = random.Random(0)
    for _ in range(200):
        en, fr = sentence_pair(rng)
        assert en.endswith(".") and fr.endswith(".") and en[0].isupper() and fr[0].isupper()


# ---- fresh training data ----------------------------------------------------------------


def _sample_input(record: Record, phrasings: dict[str, tuple[str, ...]]) -> str:
    """The generator's input of a written example: its `input` field, or, for a phrasing that
    takes the input inline, the part of the instruction that `{input}` stands for."""
    if record.input:
        return record.input
    task, index = record.meta["template"].split("/")
    pattern = re.escape(phrasings[task][int(index)])
    pattern = pattern.replace(r"\{input\}", "(?P<input>.*)", 1)
    pattern = re.sub(r"\\\{\w+\\\}", ".*?", pattern)  # other slots: {letter}, {options}, ...
    match = re.fullmatch(pattern, record.instruction, re.DOTALL)
    assert match, (record.instruction, pattern)
    return match["input"]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> list[Record]:
    """A fresh draw of 300 examples per family, as the trainer reads it."""
    path = tmp_path_factory.mktemp("fresh") / "fresh.jsonl"
    counts = write_training_set(path, per_task=300, seed=0, shared=True)
    seen = [f.name for f in all_families() if f.cluster != HELDOUT_CLUSTER]
    only = [f.name for f in training_only_families()]
    assert counts == {**dict.fromkeys(seen, 300), **dict.fromkeys(only, 120)}  # 0.4 of 300
    return read_records(path)


def test_fresh_training_data_shares_nothing_with_evaluation(shipped, fresh):
    phrasings = {f.name: f.phrasings for f in all_families() + training_only_families()}
    seen_families = {f.name for f in all_families() if f.cluster != HELDOUT_CLUSTER}
    training_only = {f.name for f in training_only_families()}
    assert len(fresh) == 300 * len(seen_families) + 120 * len(training_only)

    evaluation = [r for s in SPLITS if s != "train" for r in shipped[s]]
    eval_inputs = {(r.meta["task"], _sample_input(r, phrasings)) for r in evaluation}
    eval_keys = {(r.meta["task"], _sample_input(r, phrasings), r.output) for r in evaluation}
    eval_prompts = {format_prompt(r.instruction, r.input) for r in evaluation}
    any_eval_input = {sample_input for _, sample_input in eval_inputs}
    for r in fresh:
        task, index = r.meta["template"].split("/")
        assert r.meta["split"] == "train"
        assert format_prompt(r.instruction, r.input) not in eval_prompts, r.where
        if task in training_only:  # no split of its own: the inputs of no family's evaluation
            assert _sample_input(r, phrasings) not in any_eval_input, r.where
            continue
        assert task in seen_families
        assert int(index) < len(phrasings[task]) - 1, r.where  # never the held-out phrasing
        assert (task, _sample_input(r, phrasings)) not in eval_inputs, r.where
        assert (task, _sample_input(r, phrasings), r.output) not in eval_keys, r.where
    keys = Counter((r.meta["task"], _sample_input(r, phrasings), r.output) for r in fresh)
    assert max(keys.values()) == 1  # distinct examples
    assert max(Counter(format_prompt(r.instruction, r.input) for r in fresh).values()) == 1
    # fresh, not the shipped file again: most examples are new
    shipped_prompts = {format_prompt(r.instruction, r.input) for r in shipped["train"]}
    repeats = sum(format_prompt(r.instruction, r.input) in shipped_prompts for r in fresh)
    assert repeats < 0.05 * len(fresh)


def test_training_only_families_are_only_in_fresh_data(shipped, fresh):
    training_only = training_only_families()
    names = {f.name for f in training_only}
    assert len(training_only) >= 10 and all(len(f.phrasings) == 5 for f in training_only)
    assert HELDOUT_CLUSTER not in {f.cluster for f in training_only}
    assert not names & {f.name for f in all_families()}
    assert not names & {r.meta["task"] for split in SPLITS for r in shipped[split]}
    # every phrasing is trained on (there is no held-out one)
    templates = {r.meta["template"] for r in fresh if r.meta["task"] in names}
    assert templates == {f"{f.name}/{i}" for f in training_only for i in range(5)}
    # no held-out task's answer of several words is taught by a training-only family
    long_answers = {
        r.output for r in shipped["heldout_tasks"] if " " in r.output or "," in r.output
    }
    assert long_answers and not long_answers & {r.output for r in fresh if r.meta["task"] in names}


def test_training_only_examples_avoid_every_family_s_evaluation(shipped):
    exclusions = evaluation_exclusions(0)
    (list_min,) = [f for f in training_only_families() if f.name == "list_min"]
    list_max_input = next(
        r.input for r in shipped["valid"] if r.meta["task"] == "list_max" and r.input
    )
    heldout_answer = shipped["heldout_tasks"][0].output

    def allowed(sample):
        return exclusions.allows_anywhere(sample, render(list_min, 0, sample, "train"))

    assert allowed({"input": "1, 2, 3, 4, 5, 6, 7, 8, 9", "output": "1"})
    assert not allowed({"input": list_max_input, "output": "0"})  # another family's input
    assert not allowed({"input": "1, 2, 3, 4, 5, 6, 7, 8, 9", "output": heldout_answer})


def test_shared_families_draw_the_same_inputs():
    by_cluster = defaultdict(list)
    for family in training_only_families():
        by_cluster[family.cluster].append(family)
    assert set(by_cluster) == set(families_shared.SHARED_INPUTS)
    assert min(len(by_cluster[c]) for c in ("list_reading", "sentence_reading")) >= 5
    assert min(len(fs) for fs in by_cluster.values()) >= 1
    for cluster, families in by_cluster.items():
        draw_input = families_shared.SHARED_INPUTS[cluster]
        for i in range(200):
            wide = i % 2 == 1
            expected = draw_input(random.Random(i), wide)
            for family in families:
                assert family.make(random.Random(i), wide)["input"] == expected, family.name
    # the same input as the suite's own families (its generator draws it), other answers
    (list_min,) = [f for f in training_only_families() if f.name == "list_min"]
    for i in range(50):
        sample = list_min.make(random.Random(i))
        suite = families_symbolic.make_list_max(random.Random(i))
        assert sample["input"] == suite["input"] and sample["output"] != suite["output"]
    (value_of_key,) = [f for f in training_only_families() if f.name == "value_of_key"]
    sample = value_of_key.make(random.Random(0), wide=True)
    assert sample["input"] == families_symbolic.make_to_json(random.Random(0), wide=True)["input"]


def test_shared_families_worked_examples(monkeypatch):
    shared = families_shared
    make = {f.name: f.make for f in training_only_families()}
    rng = random.Random(0)
    monkeypatch.setattr(shared, "number_list", lambda rng, wide=False: [3, 7, 1])
    expected = {
        "list_min": "1",
        "list_first": "3",
        "list_last": "1",
        "list_length": "3",
        "list_sum": "11",
        "list_reverse": "1, 7, 3",
    }
    for name, answer in expected.items():
        assert make[name](rng) == {"input": "3, 7, 1", "output": answer}, name

    sentence = "One morning, Nora walked to the park."
    assert shared.words_of(sentence) == ["One", "morning", "Nora", "walked", "to", "the", "park"]
    monkeypatch.setattr(shared, "plain_sentence", lambda rng, wide=False: sentence)
    assert make["count_words"](rng)["output"] == "7"
    assert make["last_word"](rng)["output"] == "park"
    assert make["repeat_sentence"](rng)["output"] == sentence
    after = {
        "One": "morning",
        "morning": "Nora",
        "Nora": "walked",
        "walked": "to",
        "to": "the",
        "the": "park",
    }
    for _ in range(20):
        sample = make["nth_word"](rng)
        assert sample["output"] == shared.words_of(sentence)[sample["n"] - 1]
        assert sample["ordinal"] == shared.ORDINALS[sample["n"] - 1]
        sample = make["word_after"](rng)
        assert after[sample["word"]] == sample["output"]
    lines = "name: Anna\ncity: Paris\nage: 30"
    record = {"name": "Anna", "city": "Paris", "age": "30"}
    monkeypatch.setattr(shared, "record_lines", lambda rng, wide=False: (lines, record))
    for _ in range(10):
        sample = make["value_of_key"](rng)
        assert sample["output"] == record[sample["key"]]
    phrasing = next(f for f in training_only_families() if f.name == "nth_word").phrasings[0]
    assert phrasing.format(n=2) == "What is word number 2 of the sentence?"


def test_shared_families_answer_right_on_random_inputs():
    make = {f.name: f.make for f in training_only_families()}
    rng = random.Random(0)
    for _ in range(300):
        wide = rng.random() < 0.5
        for name, reference in [
            ("list_min", min),
            ("list_first", lambda xs: xs[0]),
            ("list_last", lambda xs: xs[-1]),
            ("list_length", len),
            ("list_sum", sum),
        ]:
            sample = make[name](rng, wide)
            xs = [int(x) for x in sample["input"].split(", ")]
            assert 3 <= len(xs) <= 8 and sample["output"] == str(reference(xs)), name
        sample = make["word_after"](rng, wide)
        words = families_shared.words_of(sample["input"])
        assert [w.lower() for w in words].count(sample["word"].lower()) == 1
        assert words[words.index(sample["word"]) + 1] == sample["output"]
        sample = make["value_of_key"](rng, wide)
        assert f"{sample['key']}: {sample['output']}" in sample["input"].split("\n")


def test_training_only_families_leave_the_other_draws_alone():
    with_shared = [e.to_json() for e in draw_training_examples(20, seed=0, shared=True)]
    without = [e.to_json() for e in draw_training_examples(20, seed=0, shared=False)]
    assert with_shared[: len(without)] == without  # the seen families' examples, same bytes
    assert len(with_shared) == len(without) + 8 * len(training_only_families())


def test_fresh_training_data_is_deterministic(tmp_path):
    write_training_set(tmp_path / "a.jsonl", per_task=40, seed=0, shared=True)
    write_training_set(tmp_path / "b.jsonl", per_task=40, seed=0, shared=True)
    write_training_set(tmp_path / "c.jsonl", per_task=40, seed=1, shared=True)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()


def _only_families(monkeypatch, *names):
    """Make the suite a few families (each draws from its own stream, so they are unchanged)."""
    families = [f for f in all_families() if f.name in names]
    monkeypatch.setattr(tasks, "all_families", lambda: families)
    monkeypatch.setattr(tasks, "training_only_families", lambda: [])


def test_an_impossible_count_is_one_line_per_task(monkeypatch, tmp_path, capsys):
    # multiplication (narrow: 198 x 8 = 1,584 questions) cannot give 2,130 distinct examples
    _only_families(monkeypatch, "multiplication", "addition", "extract_dates")
    out = tmp_path / "suite"
    assert main(["data", "generate", "--out", str(out), "--train-per-task", "2000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minitune: error: some tasks have fewer distinct examples than asked")
    assert "\n  multiplication: 1,584 distinct examples (asked 2,130 in all)\n" in err
    assert "addition" not in err and "Traceback" not in err
    assert not out.exists()  # nothing half-written

    # fresh data: the task gives what it has, with a warning; the others are complete
    path = tmp_path / "fresh.jsonl"
    assert main(["data", "fresh", "--out", str(path), "--per-task", "1500", "--narrow"]) == 0
    captured = capsys.readouterr()
    assert re.fullmatch(
        r"minitune: warning: multiplication: 1,4\d\d distinct examples \(asked 1,500\)\n",
        captured.err,
    )
    assert re.match(
        rf"{re.escape(str(path))}: 2,9\d\d examples, 2 tasks, [\d.]+ s; "
        r"per task: addition 1,500, multiplication 1,4\d\d\n",
        captured.out,
    )


def test_wide_pools_extend_the_narrow_ones():
    for name in ("first_names", "last_names", "cities", "countries", "words"):
        narrow, wide = getattr(lexicon.NARROW, name), getattr(lexicon.WIDE, name)
        assert wide[: len(narrow)] == narrow and len(wide) >= 1.5 * len(narrow), name
        assert len(set(wide)) == len(wide) and all(w.isascii() for w in wide), name
        assert all(" " not in w for w in wide), name


def test_wide_samples_have_one_answer_per_question():
    for family in all_families() + training_only_families():
        rng = random.Random(family.name)
        answers: dict[str, str] = {}
        for _ in range(400):
            sample = family.make(rng, wide=True)
            question = json.dumps({k: v for k, v in sample.items() if k not in ("output", "extra")})
            assert answers.setdefault(question, sample["output"]) == sample["output"], question


def test_every_kind_of_wide_code_function_passes_its_tests():
    code, rng = families_code, random.Random(0)
    assert len(code.number_ops(rng, wide=True)) >= 30 and len(code.string_ops(rng, wide=True)) >= 30
    programs = []
    for _ in range(12):  # every kind, 12 times with other constants, names and arguments
        for op in [*code.number_ops(rng, wide=True), *code.string_ops(rng, wide=True)]:
            sample = code.code_sample(rng, op)
            programs.append({"code": sample["output"], **sample["extra"]})
    results = check_programs(programs, batch_time_limit=120)
    failures = [
        (p["code"], r.error) for p, r in zip(programs, results, strict=True) if not r.passed
    ]
    assert not failures, failures[:3]


# ---- readers -----------------------------------------------------------------------------


def write(tmp_path, name, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_read_the_four_formats(tmp_path):
    jsonl = write(
        tmp_path,
        "a.jsonl",
        '{"instruction": "Add.", "input": "1 + 1", "output": "2", "task": "x"}\n\n'
        '{"instruction": "Say hi.", "output": "hi"}\n',
    )
    records = read_records(jsonl)
    assert [(r.instruction, r.input, r.output) for r in records] == [
        ("Add.", "1 + 1", "2"),
        ("Say hi.", "", "hi"),
    ]
    assert records[0].meta == {"task": "x"} and records[1].where.endswith("a.jsonl:3")

    alpaca = write(
        tmp_path,
        "b.json",
        '[\n  {"instruction": "A", "input": "", "output": "B"},\n'
        '  {"instruction": "C", "input": "D", "output": "E"}\n]\n',
    )
    assert [r.output for r in read_records(alpaca)] == ["B", "E"]
    assert read_records(alpaca)[1].where.endswith("b.json:3")

    dolly = write(
        tmp_path,
        "c.jsonl",
        '{"instruction": "Q?", "context": "ctx", "response": "R", "category": "qa"}\n',
    )
    (r,) = read_records(dolly)
    assert (r.instruction, r.input, r.output, r.meta) == ("Q?", "ctx", "R", {"category": "qa"})

    chat = write(
        tmp_path,
        "d.jsonl",
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": "Name?"},
                    {"role": "assistant", "content": "Ada"},
                ]
            }
        )
        + "\n",
    )
    turns = read_records(chat)
    assert [(r.instruction, r.input, r.output) for r in turns] == [
        ("Be brief.", "User: Hi", "Hello"),
        ("Be brief.", "User: Hi\nAssistant: Hello\nUser: Name?", "Ada"),
    ]


@pytest.mark.parametrize(
    "name,content,expected",
    [
        (
            "bad.jsonl",
            '{"instruction": "a", "output": "b"}\n{"instruction": "a" "output": "b"}\n',
            r"bad.jsonl:2: malformed JSON: Expecting ',' delimiter",
        ),
        (
            "bad.jsonl",
            '{"instruction": "a", "input": "b"}\n',
            'bad.jsonl:1: missing field "output"',
        ),
        (
            "bad.jsonl",
            '\n{"instruction": "a", "input": 3, "output": "b"}\n',
            'bad.jsonl:2: field "input" must be a string, got int',
        ),
        (
            "bad.jsonl",
            '["instruction", "output"]\n',
            "bad.jsonl:1: expected a JSON object, got list",
        ),
        (
            "bad.json",
            '[1, {"instruction": "a", "output": "b"}]',
            "bad.json:1: expected a JSON object, got int",
        ),
        (
            "bad.jsonl",
            '{"instruction": "a", "output": "  "}\n',
            'bad.jsonl:1: field "output" is empty',
        ),
        ("bad.jsonl", "  \n\n", "bad.jsonl: the file is empty"),
        (
            "bad.jsonl",
            b'{"instruction": "caf\xe9", "output": "b"}\n',
            r"bad.jsonl:1: not UTF-8 text \(byte 0xe9",
        ),
        (
            "bad.json",
            '[\n {"instruction": "a", "output": "b"},\n {"instruction": "a"}\n]',
            'bad.json:3: missing field "output"',
        ),
        (
            "bad.json",
            '[\n {"instruction": "a", "output": "b"}\n {"x": 1}\n]',
            "bad.json:3: malformed JSON",
        ),
        (
            "bad.jsonl",
            '{"messages": [{"role": "robot", "content": "x"}]}\n',
            "bad.jsonl:1: message 0: role must be",
        ),
        ("bad.jsonl", '{"messages": "hi"}\n', 'bad.jsonl:1: field "messages" must be a list'),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, name, content, expected):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError, match=expected):
        read_records(path)


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    lines = [
        '{"instruction": "a", "output": "b"}',
        '{"output": "b"}',
        "{oops",
        '{"instruction": "a"}',
    ]
    path = write(tmp_path, "many.jsonl", "\n".join(lines))
    with pytest.raises(DataError) as err:
        read_records(path)
    message = str(err.value)
    assert "many.jsonl:2:" in message and "many.jsonl:3:" in message and "many.jsonl:4:" in message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_records_or_a_data_error(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "f.jsonl"
    path.write_bytes(blob)
    try:
        records = read_records(path)
    except DataError as err:
        assert str(err).startswith(str(path))
    else:
        assert all(isinstance(r.output, str) and r.output.strip() for r in records)


# ---- prompts, batching, span corruption ---------------------------------------------------


def test_prompt_worked_examples():
    assert (
        format_prompt("Translate to French.", "The cat sleeps.")
        == "Translate to French.\nThe cat sleeps."
    )
    assert format_prompt("Say hi.") == "Say hi."
    assert (
        format_prompt("Add the numbers.", "2 + 2", exemplars=[("1 + 1", "2")])
        == "Add the numbers.\nInput: 1 + 1\nOutput: 2\nInput: 2 + 2\nOutput:"
    )


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(ROOT / "tokenizer" / "minitune.model")


def test_encode_and_collate(tok):
    records = [
        Record("Add.", "1 + 1", "2"),
        Record("Reverse the text.", "a long input " * 30, "x" * 80),
    ]
    encoded, report = encode_records(records, tok, max_source_length=32, max_target_length=16)
    assert (report.n_source_truncated, report.n_target_truncated) == (1, 1)
    assert "1 prompts and 1 answers truncated" in str(report)
    assert all(e.source[-1] == tok.eos_id and e.target[-1] == tok.eos_id for e in encoded)
    batch = collate(encoded, tok.pad_id)
    assert batch["input_ids"].shape == (2, 32) and batch["labels"].shape == (2, 16)
    n = len(encoded[0].source)
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (32 - n)
    assert (batch["input_ids"][0, n:] == tok.pad_id).all()
    m = len(encoded[0].target)
    assert (
        batch["labels"][0, :m].tolist() == encoded[0].target
        and (batch["labels"][0, m:] == -100).all()
    )


def test_spelled_prompts_keep_text_and_answers(tok):
    records = read_records(ROOT / "data" / "valid.jsonl")[:60]
    plain, _ = encode_records(records, tok, 512, 512)
    spelled, _ = encode_records(records, tok, 512, 512, spell_prompts=0.3, seed=1)
    again, _ = encode_records(records, tok, 512, 512, spell_prompts=0.3, seed=1)
    assert [e.source for e in spelled] == [e.source for e in again]  # drawn from the seed
    assert [e.target for e in spelled] == [e.target for e in plain]  # answers never spelled
    for p, s in zip(plain, spelled, strict=True):
        assert tok.decode(s.source) == tok.decode(p.source)  # the same prompt text
    assert sum(map(len, (e.source for e in spelled))) > 1.2 * sum(len(e.source) for e in plain)


def test_length_buckets_cover_everything_once_and_reduce_padding():
    rng = random.Random(0)
    lengths = [rng.randint(5, 200) for _ in range(1000)]
    batches = length_bucketed_batches(lengths, batch_size=16, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    shuffled = list(range(1000))
    rng.shuffle(shuffled)
    naive = sum(16 * max(lengths[i] for i in shuffled[j : j + 16]) for j in range(0, 1000, 16))
    assert padded < 0.7 * naive
    assert length_bucketed_batches(lengths, 16, seed=0) == batches


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(200, 3000), min_size=2, max_size=400), st.integers(0, 10**6))
def test_span_corruption_reconstructs_exactly(ids, seed):
    sentinels = list(range(3, 103))
    inputs, targets = span_corrupt(ids, sentinels, random.Random(seed))
    assert reconstruct(inputs, targets, sentinels) == ids
    used = [t for t in inputs if t in sentinels]
    assert used == sentinels[: len(used)]  # in order, from <extra_id_0>
    assert targets[0] == sentinels[0] and targets[-1] == sentinels[len(used)]


def test_span_corruption_density_and_span_length():
    rng = random.Random(0)
    ids = list(range(1000, 1500))
    inputs, targets = span_corrupt(ids, list(range(3, 103)), rng)
    n_spans = sum(1 for t in inputs if t < 103)
    noise = len(targets) - n_spans - 1
    assert noise == 75  # 15% of 500
    assert n_spans == 25  # mean span length 3


def test_a_training_only_input_is_no_part_of_an_evaluation_input():
    assert tasks.pieces_of("A b. C d.\nE") == {"A b. C d.\nE", "A b. C d.", "A b.", "C d.", "E"}
    stories = [
        json.loads(line)["input"]
        for split in ("valid", "test", "heldout_phrasings")
        for line in (ROOT / "data" / f"{split}.jsonl").open()
        if json.loads(line)["task"] == "summarize_story"
    ]
    parts = {p for story in stories for p in tasks.pieces_of(story)}
    drawn = draw_training_examples(300, seed=0, shared=True)
    sentences = [e for e in drawn if e.task in ("repeat_sentence", "count_words", "last_word")]
    assert sentences and not parts & {e.input for e in sentences}  # no evaluation story's sentence
