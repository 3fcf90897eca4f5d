import pytest
import torch

from minitune import PRESETS, ModelConfig, Seq2SeqTransformer
from minitune.layers import registry
from minitune.run.settings import load_run_config


def test_d_model_not_divisible_by_heads_names_both():
    with pytest.raises(ValueError, match=r"d_model=30.*n_heads=4"):
        ModelConfig(d_model=30, n_heads=4)


def test_explicit_d_head_allows_any_d_model():
    cfg = ModelConfig(d_model=30, n_heads=4, d_head=8)
    assert cfg.inner_dim == 32


@pytest.mark.parametrize(
    "field,value,fragment",
    [
        ("position", "rotary-ish", "position='rotary-ish' is not a registered position"),
        ("ffn", "tanh", "ffn='tanh'"),
        ("norm", "batch", "norm='batch'"),
        ("norm_position", "middle", "norm_position"),
        ("impl", "flash", "impl"),
        ("dropout", 1.5, "dropout"),
        ("vocab_size", 0, "vocab_size"),
        ("n_encoder_layers", -1, "n_encoder_layers"),
        ("eos_id", 500, "eos_id=500 is outside the vocab"),
        ("relative_buckets", 7, "relative_buckets"),
    ],
)
def test_bad_values_are_rejected_with_the_field(field, value, fragment):
    """By the config, or (variant names: layers/registry.py) where the model is built."""
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        Seq2SeqTransformer(ModelConfig.preset("tiny", **{field: value}))


def test_unknown_field_and_preset():
    with pytest.raises(ValueError, match="unknown key 'n_head'; did you mean 'n_heads'"):
        ModelConfig.from_dict({"d_model": 32, "n_head": 4})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        ModelConfig.preset("huge")


def test_dict_round_trip():
    cfg = ModelConfig.preset("laptop", dropout=0.2)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert "inner_dim" not in cfg.to_dict()


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_build(name):
    cfg = ModelConfig.preset(name)
    assert cfg.inner_dim == cfg.n_heads * cfg.d_head


def test_t5_small_preset_has_t5_small_size():
    # Google's t5-small has 60,506,624 parameters (tied embeddings, 32128 ids).
    with torch.device("meta"):
        model = Seq2SeqTransformer(ModelConfig.preset("t5-small"))
    assert model.num_parameters() == 60_506_624
    with torch.device("meta"):  # and t5-base 222,903,552
        assert Seq2SeqTransformer(ModelConfig.preset("t5-base")).num_parameters() == 222_903_552


def test_laptop_preset_is_a_few_million_parameters():
    with torch.device("meta"):
        n = Seq2SeqTransformer(ModelConfig.preset("laptop")).num_parameters()
    assert 2e6 < n < 10e6


@pytest.mark.parametrize(
    "kind,name", [(kind, name) for kind in registry.REGISTRY for name in registry.names(kind)]
)
def test_every_registered_variant_builds_a_model(kind, name):
    model = Seq2SeqTransformer(ModelConfig.preset("tiny", **{kind: name}))
    assert model.num_parameters() > 0


def test_unknown_variant_names_what_is_registered():
    """Checked where the model is built, before any layer (config.py imports no layer)."""
    with pytest.raises(ValueError, match=r"ModelConfig.norm='batch'.*'rms', 'layer'"):
        Seq2SeqTransformer(ModelConfig(norm="batch"))
    with pytest.raises(ValueError, match="cannot import 'no_such_module'"):
        Seq2SeqTransformer(ModelConfig(attention="no_such_module:Attn"))
    with pytest.raises(ValueError, match="has no 'Nope'"):
        Seq2SeqTransformer(ModelConfig(ffn="minitune.layers.feedforward:Nope"))
    with pytest.raises(ValueError, match="has no 'Nope'"):  # a checkpoint's too, by registry.check
        registry.check(ModelConfig(ffn="minitune.layers.feedforward:Nope"))


def test_a_variant_named_by_path_is_built():
    cfg = ModelConfig.preset("tiny", norm="minitune.layers.norm:LayerNorm")
    model = Seq2SeqTransformer(cfg)
    assert type(model.encoder.final_norm).__name__ == "LayerNorm"


def test_n_kv_heads_must_divide_n_heads():
    with pytest.raises(ValueError, match="n_kv_heads"):
        ModelConfig.preset("tiny", n_kv_heads=3)


def training_run_of(*argv: str):
    """The run config `minitune train ARGV` resolves (nothing is trained)."""
    from minitune.cli import build_parser
    from minitune.cli.training import run_config_of

    return run_config_of(build_parser().parse_args(["train", *argv]), "instruct")


def test_own_data_replaces_the_laptop_configs_fresh_draw_and_validates_on_itself():
    """configs/laptop.toml trains on a fresh draw of the suite and validates on its valid
    split; --data names other data: it trains, and a held-out train.valid_fraction of it
    validates, unless --valid-data (or a --set) names a file; each value logged with --data."""
    laptop = training_run_of()
    assert laptop.train.fresh_per_task == 5000 and laptop.train.valid_data.endswith("valid.jsonl")
    own = training_run_of("--data", "data/train.jsonl")
    assert own.train.fresh_per_task == 0 and own.train.data[0].endswith("data/train.jsonl")
    assert own.train.valid_data is None and own.train.valid_fraction == 0.05
    assert "train.fresh_per_task" not in {line.split(" = ")[0] for line in own.log_lines()}
    assert own.where["train.valid_data"] == own.where["train.fresh_per_task"] == "--data"
    named = training_run_of("--valid-data", "v.jsonl", "--data", "data/train.jsonl")
    assert named.train.valid_data.endswith("v.jsonl")  # a flag wins over what --data implies
    assert training_run_of("--data", "x", "--set", "train.valid_data=v").train.valid_data
    again = training_run_of("--data", "x.jsonl", "--set", "train.fresh_per_task=7")
    assert again.train.fresh_per_task == 7
    # Python callers name every value themselves: there is no rule behind load_run_config
    _, cfg = load_run_config("laptop", {"train": {"data": ["x.jsonl"]}})
    assert cfg.fresh_per_task == 5000 and cfg.valid_data.endswith("valid.jsonl")


def test_config_is_a_leaf_that_imports_no_layer_and_no_torch():
    """config.py imports no layer: run in a fresh process, importing it (with the package's own
    modules found on the path, but not minitune/__init__.py, which builds the public API from
    the model) loads neither torch nor minitune.layers."""
    import subprocess
    import sys

    code = (
        "import importlib.util, sys, types\n"
        "package = types.ModuleType('minitune')\n"
        "package.__path__ = list(importlib.util.find_spec('minitune').submodule_search_locations)\n"
        "sys.modules['minitune'] = package\n"
        "import minitune.config\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('minitune')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = ["['minitune',", "'minitune.config',", "'minitune.run',", "'minitune.run.paths']"]
    assert done.stdout.split() == imported  # run/__init__.py imports nothing


def test_no_import_circle_through_config_even_for_type_checkers():
    """Layers import ModelConfig for their type hints (under TYPE_CHECKING); nothing config.py
    imports, at the top, inside a function or for type checkers, leads to a layer or back to
    config itself."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def imports(module: str) -> set[str]:
        path = root / (module.replace(".", "/") + ".py")
        if not path.is_file():
            path = root / module.replace(".", "/") / "__init__.py"
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # every import
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("minitune"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("minitune")}
        return found

    reached, todo = set(), list(imports("minitune.config"))
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += imports(module)
    assert "minitune.config" not in reached
    assert not [m for m in reached if m.startswith(("minitune.layers", "minitune.model"))]


def test_a_run_config_is_resolved_once_with_each_values_source():
    """File, then each --set, then each flag (a flag wins over --set); the log names the
    source of every value not at its default, and only those."""
    from minitune.run.settings import read_run_file

    laptop = read_run_file("laptop")
    assert laptop.where == "configs/laptop.toml" and "data" not in laptop.train  # not read: none
    run = training_run_of(
        "--max-minutes", "3", "--set", "train.max_minutes=5", "--set", "train.lr=0.01"
    )
    lines = run.log_lines()
    assert lines[0] == "model.preset = 'laptop' (configs/laptop.toml)"
    assert "train.lr = 0.01 (--set train.lr=0.01)" in lines
    assert "train.max_minutes = 3.0 (--max-minutes)" in lines
    assert "train.fresh_per_task = 5000 (configs/laptop.toml)" in lines
    assert not any(line.startswith("train.optimizer") for line in lines)  # at its default
    assert not any(line.startswith("train.valid_fraction") for line in lines)  # at its default
    flags = training_run_of("--fsdp", "--skip-nonfinite", "--lora-targets", "q,k").log_lines()
    assert [line for line in flags if line.endswith(("(--fsdp)", "nonfinite)", "targets)"))] == [
        "train.lora_targets = ['q', 'k'] (--lora-targets)",
        "train.on_nonfinite = 'skip' (--skip-nonfinite)",
        "train.fsdp = True (--fsdp)",
    ]


def test_the_training_datas_source_is_said():
    from minitune.data.stream import data_line
    from minitune.run.settings import to_toml

    model_cfg, cfg = load_run_config("laptop", {"train": {"out": "runs/x"}})
    assert data_line(cfg) == (
        "training data: 177,000 fresh examples drawn from the suite's generators "
        "(fresh_per_task = 5000, 48 tasks, the training-only families too (fresh_shared)) into "
        f"runs/x/fresh_train.jsonl; train.data is not read; validation: {cfg.valid_data}"
    )
    assert "\n# data = [" in to_toml(model_cfg, cfg)  # --print-config: data shown as not read
    _, tiny = load_run_config("tiny", {"train": {"valid_data": None}})
    assert data_line(tiny) == (
        f"training data: {tiny.data[0]}; validation: a held-out 5% of it (train.valid_fraction)"
    )
