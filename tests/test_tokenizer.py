import filecmp
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minitune.tokenizer import COPYABLE, Segmentation, Tokenizer, segmentation_file, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "tokenizer" / "minitune.model"

# From the seed document (Chinese prose, a formula) plus the things T5's vocabulary loses:
# French accents, code with braces, tabs, newlines, repeated and trailing spaces.
HARD_TEXTS = [
    "指令微调（Instruction Tuning）技术应运而生。该技术通过在预训练的LLMs基础上进行微调。",
    "$$\nL(\\theta) = -\\sum_{i=1}^{N} \\log p(y_i | x_i, \\theta)\n$$",
    "Traduisez en français : « Ça va très bien, merci ! » — dit-il à l'élève.",
    'def f(x):\n\tif x:\n        return {"a": [1, 2]}\n    return {}\n',
    "two  spaces,   three, trailing   \n\n\nand blank lines",
    "  leading spaces and emoji 🙂 and <extra_id_7> and \u00a0nbsp",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer(SHIPPED)


def test_special_ids_and_sentinels(tok):
    assert (tok.pad_id, tok.eos_id, tok.unk_id) == (0, 1, 2)
    assert tok.sentinel_ids == list(range(3, 103))
    assert tok.sp.id_to_piece(tok.sentinel_id(0)) == "<extra_id_0>"
    assert tok.sp.id_to_piece(tok.sentinel_id(99)) == "<extra_id_99>"
    assert tok.vocab_size == 3000  # asked 3000; the world corpus supports them all (2,462 before)


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_hard_texts_round_trip(tok, text):
    ids = tok.encode(text)
    assert tok.unk_id not in ids
    assert tok.decode(ids) == text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_unicode_round_trips(text):
    tok = Tokenizer(SHIPPED)
    assert tok.decode(tok.encode(text)) == text


def test_newline_and_tab_are_single_tokens(tok):
    plain = Tokenizer(SHIPPED, Segmentation())
    assert len(plain.encode("\n")) == 1 and len(plain.encode("\t")) == 1
    assert [tok.piece(i) for i in tok.encode("a\tb\nc")] == ["▁a", "\t", "b", "\n", "▁c"]


def pieces(tok: Tokenizer, text: str) -> list[str]:
    return [tok.piece(i) for i in tok.encode(text)]


def test_shipped_tokenizer_has_the_copyable_conventions(tok):
    assert tok.segmentation == COPYABLE
    assert segmentation_file(SHIPPED).is_file()
    plain = Tokenizer(SHIPPED, Segmentation())
    # a word at the start of an answer or a line is the piece it is inside a prompt
    assert pieces(plain, "Lucia") != pieces(plain, " Lucia")
    assert pieces(tok, "Lucia") == ["▁Lucia"]
    assert pieces(tok, "name: Lucia\nLucia")[2:] == ["▁Lucia", "\n", "▁Lucia"]
    # a run of capitals is one letter per token, with the space its own token
    assert pieces(tok, "FBL") == ["▁", "F", "B", "L"]
    assert pieces(tok, "go CLEVER") == ["▁go", "▁", "C", "L", "E", "V", "E", "R"]
    assert pieces(tok, "I am") == pieces(plain, " I am")  # one capital is not a run
    assert plain.fingerprint() != tok.fingerprint()  # a checkpoint tells them apart


@pytest.mark.parametrize(
    "text", ["", "\n", "x\n", "x\n\n y", "a\n ", " \n \n", "ÀÉÎ et ÇA", "AB\nCD"]
)
def test_line_space_edge_cases_round_trip(tok, text):
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("") == []


@settings(max_examples=200, deadline=None)
@given(st.text(), st.floats(0.0, 0.99), st.integers(0, 10))
def test_spelled_prompts_decode_to_the_same_text(text, rate, seed):
    import random

    tok = Tokenizer(SHIPPED)
    spelled = tok.encode_spelled(text, rate, random.Random(seed))
    assert tok.decode(spelled) == text
    assert spelled == tok.encode_spelled(text, rate, random.Random(seed))  # seeded
    assert tok.encode_spelled(text, 0.0, random.Random(seed)) == tok.encode(text)


def test_spelling_shows_the_letters_inside_words(tok):
    import random

    spelled = tok.encode_spelled("clever dogs", 0.999, random.Random(0))
    assert [tok.piece(i) for i in spelled] == ["▁", *"clever", "▁", *"dogs"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not a readable segmentation file"),
        ('{"line_space": true, "spell_caps": true}', "unknown field(s) ['spell_caps']"),
        ('{"line_space": "yes"}', "field 'line_space' must be true or false"),
        ("[1]", "unknown field(s)"),
    ],
)
def test_a_bad_segmentation_file_names_itself(tmp_path, content, message):
    model = tmp_path / "t.model"
    model.write_bytes(SHIPPED.read_bytes())
    segmentation_file(model).write_text(content)
    with pytest.raises(ValueError, match=r"t\.segmentation\.json") as err:
        Tokenizer(model)
    assert message in str(err.value)


def test_decode_stops_at_eos_and_drops_pad(tok):
    ids = tok.encode("hello world", add_eos=True)
    assert ids[-1] == tok.eos_id
    assert tok.decode([*ids, 17, 18, 0, 0]) == "hello world"
    assert tok.decode(torch.tensor([0, *ids])) == "hello world"


def test_encode_batch_pads_masks_and_counts_truncation(tok):
    long_text = "the cat sees the dog " * 20
    batch = tok.encode_batch(["a", long_text, "two words"], max_length=12)
    assert batch.input_ids.shape == (3, 12)
    assert batch.truncated == 1
    assert batch.input_ids[1, -1] == tok.eos_id  # truncated rows still end with EOS
    lengths = batch.attention_mask.sum(1).tolist()
    for row, n in zip(batch.input_ids.tolist(), lengths, strict=True):
        assert row[n - 1] == tok.eos_id and all(t == tok.pad_id for t in row[n:])


def test_too_small_vocabulary_is_a_clear_error(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abc def\n" * 50, encoding="utf-8")
    with pytest.raises(ValueError, match="vocab_size=100 is too small"):
        train_tokenizer([corpus], tmp_path / "t", vocab_size=100)


def test_missing_model_file():
    with pytest.raises(FileNotFoundError, match=r"nope\.model"):
        Tokenizer("nope.model")


def test_bpe_option_and_determinism(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(f"the cat {i} sat on the mat" for i in range(300)), encoding="utf-8"
    )
    a = train_tokenizer([corpus], tmp_path / "a", vocab_size=500, model_type="bpe")
    b = train_tokenizer([corpus], tmp_path / "b", vocab_size=500, model_type="bpe")
    tok = Tokenizer(a)
    assert tok.sp.id_to_piece(tok.sentinel_id(5)) == "<extra_id_5>"
    assert tok.decode(tok.encode("the cat\tsat  ")) == "the cat\tsat  "
    other = Tokenizer(b)
    pieces = [tok.sp.id_to_piece(i) for i in range(tok.vocab_size)]
    assert [other.sp.id_to_piece(i) for i in range(other.vocab_size)] == pieces


def test_shipped_tokenizer_is_reproducible_from_data(tmp_path):
    """The command in tokenizer/README.md rebuilds tokenizer/minitune.model byte for byte."""
    readme = (ROOT / "tokenizer" / "README.md").read_text(encoding="utf-8")
    command = next(line for line in readme.splitlines() if line.startswith("minitune tokenizer"))
    assert "--out tokenizer/minitune" in command
    args = command.split()[1:]
    # same relative paths, run from a copy of the repo's data folder
    (tmp_path / "data").symlink_to(ROOT / "data")
    subprocess.run(
        [sys.executable, "-m", "minitune", *args], cwd=tmp_path, check=True, capture_output=True
    )
    assert filecmp.cmp(tmp_path / "tokenizer" / "minitune.model", SHIPPED, shallow=False)
    side = segmentation_file(tmp_path / "tokenizer" / "minitune.model")
    assert filecmp.cmp(side, segmentation_file(SHIPPED), shallow=False)  # the conventions too


def test_plain_training_writes_no_conventions(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"the cat {i} sat on the mat" for i in range(300)))
    model = train_tokenizer([corpus], tmp_path / "t", vocab_size=500)
    assert Tokenizer(model).segmentation == COPYABLE  # the default, stored beside the model
    model = train_tokenizer([corpus], tmp_path / "t", vocab_size=500, segmentation=Segmentation())
    assert not segmentation_file(model).exists() and Tokenizer(model).segmentation.plain


def test_checkpoints_and_exports_carry_the_conventions(tmp_path):
    from minitune import ModelConfig, Seq2SeqTransformer
    from minitune.interop.t5 import export_t5
    from minitune.run.checkpoint import load_pretrained, save_checkpoint

    model = Seq2SeqTransformer(
        ModelConfig(
            vocab_size=3000, d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1, n_decoder_layers=1
        )
    )
    save_checkpoint(tmp_path / "ours", model, {"step": 0}, SHIPPED)
    _, tokenizer_file, _ = load_pretrained(tmp_path / "ours")
    assert Tokenizer(tokenizer_file).segmentation == COPYABLE
    plain = tmp_path / "plain.model"  # a tokenizer file without conventions (an old checkpoint)
    plain.write_bytes(SHIPPED.read_bytes())
    save_checkpoint(tmp_path / "old", model, {"step": 0}, plain)
    assert not (tmp_path / "old" / "tokenizer.segmentation.json").exists()
    assert Tokenizer(tmp_path / "old" / "tokenizer.model").segmentation.plain
    export_t5(model, tmp_path / "t5", tokenizer_file=SHIPPED)
    assert Tokenizer(tmp_path / "t5" / "spiece.model").segmentation == COPYABLE
