"""Checkpoints: a folder per checkpoint, written atomically, loaded without running pickled code.

    runs/laptop/best/
        config.json          model config, training config, tokenizer hash, step, metrics
        model.safetensors    the weights (our own reader/writer of the safetensors format)
        tokenizer.model      a copy of the tokenizer, so the folder is self-contained
        tokenizer.segmentation.json   its segmentation conventions, when it has any
        trainer.pt           optimizer state, RNG states, data position (for --resume);
                             read with torch.load(weights_only=True): tensors and numbers only

A LoRA run (`minitune.lora`) saves only its adapters: adapter.safetensors instead of
model.safetensors, and config.json names the base folder and a hash of its weights; loading
rebuilds the base, checks the hash and adds the adapters.

A folder is first written as `<name>.tmp`, each file flushed and fsynced, config.json last, then
swapped in with renames (`<name>` -> `<name>.old`, `<name>.tmp` -> `<name>`), so a crash mid-save
leaves the previous checkpoint intact; `recover` finishes a swap that a crash interrupted.
config.json lists every other file with its size and sha256, and loading checks them: a truncated
or corrupted file is reported by name instead of loading garbage.

The safetensors format is read and written by `minitune.run.safetensors_io`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import torch

from minitune.config import OBSOLETE, ModelConfig
from minitune.run.safetensors_io import CheckpointError, load_safetensors, save_safetensors
from minitune.tokenizer import Tokenizer, segmentation_file

TOKENIZER_SIDE = segmentation_file("tokenizer.model").name  # tokenizer.segmentation.json


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    folder: str | Path,
    model,
    info: dict,
    tokenizer_file: str | Path,
    trainer_state: dict | None = None,
    state_dict: dict | None = None,
    card: str | None = None,
) -> None:
    """Write a checkpoint folder atomically. `info` goes into config.json with the model config.

    `state_dict` replaces model.state_dict() (e.g. the full weights gathered from FSDP shards).
    A LoRA model (model.lora set) is saved as its adapters only (adapter.safetensors). `card`:
    the folder's README.md (a model card, minitune/run/report.py), written in the same swap but not
    listed among its checked files, since an evaluation may add its scores later."""
    state_dict = state_dict if state_dict is not None else model.state_dict()
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if getattr(model, "lora", None) is not None:  # adapter-only checkpoint
        adapters = {k: v for k, v in state_dict.items() if ".lora_A" in k or ".lora_B" in k}
        save_safetensors(_clean_names(adapters), tmp / "adapter.safetensors")
        info = {**info, "lora": model.lora.to_dict()}
    else:
        save_safetensors(_clean_names(state_dict), tmp / "model.safetensors")
    # the tokenizer and its segmentation conventions (if it has any), so the folder decodes alone
    side = segmentation_file(tokenizer_file)
    for src_path, name in ((tokenizer_file, "tokenizer.model"), (side, TOKENIZER_SIDE)):
        if Path(src_path).is_file():
            with open(src_path, "rb") as src, open(tmp / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
    if trainer_state is not None:
        with open(tmp / "trainer.pt", "wb") as f:
            torch.save(trainer_state, f)
            f.flush()
            os.fsync(f.fileno())
    files = {
        p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())
    }
    _write_json(tmp / "config.json", {"model": model.config.to_dict(), **info, "files": files})
    if card is not None:
        (tmp / "README.md").write_text(card, encoding="utf-8")
    _fsync_dir(tmp)
    old = folder.with_name(folder.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)  # from here on the new checkpoint is the checkpoint
    _fsync_dir(folder.parent)
    if old.exists():
        shutil.rmtree(old)


def recover(folder: str | Path) -> None:
    """Finish a checkpoint swap that a crash interrupted: when `folder` is missing, take the
    complete `.tmp` (its config.json is written last) or else the previous `.old`."""
    folder = Path(folder)
    if folder.exists():
        return
    for suffix in (".tmp", ".old"):
        candidate = folder.with_name(folder.name + suffix)
        if (candidate / "config.json").is_file():
            candidate.rename(folder)
            return


def verify(folder: str | Path, info: dict | None = None) -> None:
    """Check every file listed in config.json for its size and sha256; CheckpointError names
    the first that differs. (Checkpoints written before the list existed are not checked.)"""
    folder = Path(folder)
    info = info if info is not None else read_config(folder)
    for name, expected in (info.get("files") or {}).items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (listed in config.json)")
        size = path.stat().st_size
        if size != expected["size"]:
            raise CheckpointError(
                f"{path}: truncated or overwritten ({size} bytes, expected {expected['size']})"
            )
        if _sha256(path) != expected["sha256"]:
            raise CheckpointError(f"{path}: corrupted (sha256 differs from config.json's)")


def _clean_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensor names without the wrappers' prefixes: torch.compile's `_orig_mod.` (anywhere) and
    DistributedDataParallel's leading `module.`."""
    return {k.replace("_orig_mod.", "").removeprefix("module."): v for k, v in state.items()}


# Checkpoints and adapters written by minitune 0.1 before its blocks held their layers as plain
# attributes name a block's sub-layer `<name>.sublayer.` and its norm `<name>.norm.`:
# `decoder.layers.0.self_attn.sublayer.q.weight` is `decoder.layers.0.self_attn.q.weight` now,
# `decoder.layers.0.ff.norm.weight` is `decoder.layers.0.ff_norm.weight`.
_EARLIER_NAME = re.compile(r"(layers\.\d+\.(?:self_attn|cross_attn|ff))\.(sublayer|norm)\.")


def current_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A loaded state dict with every tensor name as the model names it now (see above)."""

    def rename(match: re.Match) -> str:
        return match[1] + ("." if match[2] == "sublayer" else "_norm.")

    return {_EARLIER_NAME.sub(rename, name): tensor for name, tensor in state.items()}


def read_config(folder: str | Path) -> dict:
    """A checkpoint's config.json, checked for the shape that loading relies on; a damaged file
    (not JSON, not UTF-8, or JSON of the wrong shape) raises CheckpointError naming it."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a checkpoint folder (no config.json)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError too
        raise CheckpointError(f"{path}: not valid JSON: {err}") from None
    _check_config_shape(path, info)
    return info


# config.json's fields that loading reads, and the JSON type each must have
_CONFIG_FIELDS = {
    "model": dict,
    "files": dict,
    "lora": dict,
    "base": dict,
    "step": int,
    "tokenizer_sha": str,
}


def _check_config_shape(path: Path, info) -> None:
    """Valid JSON of the wrong shape (a damaged or hand-edited file) fails here, by name."""

    def damaged(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: {what}; the file is damaged (restore or re-save it)")

    if not isinstance(info, dict):
        raise damaged(f"a JSON {type(info).__name__} instead of an object")
    if "model" not in info:
        raise damaged('no "model" field')
    for key, kind in _CONFIG_FIELDS.items():
        value = info.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise damaged(f'field "{key}" is a {type(value).__name__}, not a {kind.__name__}')
    for name, entry in (info.get("files") or {}).items():
        size = entry.get("size") if isinstance(entry, dict) else None
        if (
            Path(name).name != name
            or name in ("", ".", "..")
            or type(size) is not int
            or not isinstance(entry.get("sha256"), str)
        ):
            raise damaged(f"malformed entry for {name!r} in the file list")
    base = info.get("base") or {}
    if not all(isinstance(base.get(k), (str, type(None))) for k in ("path", "sha")):
        raise damaged('field "base" must hold a path and a sha (strings)')


def load_model(folder: str | Path, device: str | torch.device = "cpu"):
    """The model of a checkpoint folder, in eval mode, and the folder's config.json."""
    from minitune.layers import registry
    from minitune.model import Seq2SeqTransformer

    recover(folder)
    info = read_config(folder)
    verify(folder, info)
    if "lora" in info:
        return _load_lora(Path(folder), info, device), info
    try:
        cfg = ModelConfig.from_dict(info["model"])
        registry.check(cfg)  # its variant names
    except (TypeError, ValueError, ArithmeticError) as err:
        raise CheckpointError(f"{folder}/config.json: bad model config: {err}") from None
    state = current_names(_clean_names(load_safetensors(Path(folder) / "model.safetensors")))
    _check_weights_fit(cfg, state, Path(folder) / "model.safetensors")
    model = Seq2SeqTransformer(cfg)
    model.load_state_dict(state)
    return model.to(device).eval(), info


def _check_weights_fit(cfg: ModelConfig, state: dict[str, torch.Tensor], path: Path) -> None:
    """Compare the tensors' names and shapes with those of a model built from `cfg`, before
    allocating it: a damaged config.json may ask for a model far too large to build."""
    from minitune.model import Seq2SeqTransformer

    with torch.device("meta"):  # shapes only, no memory
        expected = {k: v.shape for k, v in Seq2SeqTransformer(cfg).state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    resized = [
        f"{k} {list(state[k].shape)} != {list(v)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v
    ]
    if missing or unexpected or resized:
        raise CheckpointError(
            f"{path} does not match config.json: missing {missing[:10]}, "
            f"unexpected {unexpected[:10]}" + (f", other shapes {resized[:5]}" if resized else "")
        )


def weights_fingerprint(folder: str | Path) -> str:
    """A short sha256 of a checkpoint's weight files (minitune or Hugging Face layout)."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin"))
    for path in files:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _load_lora(folder: Path, info: dict, device):
    """An adapter checkpoint: its base model, checked by hash, with the adapters added."""
    from minitune.lora import LoRASettings, add_lora

    base = info.get("base") or {}
    base_path = Path(base.get("path", ""))
    if not (base_path / "config.json").is_file():
        raise CheckpointError(
            f"{folder} holds LoRA adapters for the base model {base_path}, which is not there "
            "any more; restore that folder (or merge adapters while it exists: minitune lora merge)"
        )
    if base.get("sha") and weights_fingerprint(base_path) != base["sha"]:
        raise CheckpointError(
            f"{folder}: the base model {base_path} has changed since the adapters were trained "
            f"(weights hash {weights_fingerprint(base_path)}, expected {base['sha']})"
        )
    model, _, _ = load_pretrained(base_path, device)
    saved = {k: v for k, v in info["model"].items() if k not in OBSOLETE}  # older files: a path
    if saved != json.loads(json.dumps(model.config.to_dict())):
        raise CheckpointError(
            f"{folder}/config.json: its model config is not that of the base model {base_path}"
        )
    try:
        add_lora(model, LoRASettings(**info["lora"]))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{folder}/config.json: bad LoRA settings: {err}") from None
    state = current_names(load_safetensors(folder / "adapter.safetensors"))
    adapters = model.state_dict()
    missing = [k for k in adapters if ".lora_" in k and k not in state]
    unexpected = [k for k in state if k not in adapters or state[k].shape != adapters[k].shape]
    if missing or unexpected:
        raise CheckpointError(
            f"{folder}/adapter.safetensors does not match its LoRA settings: missing "
            f"{missing[:10]}, unexpected {unexpected[:10]}"
        )
    model.load_state_dict(state, strict=False)
    return model.to(device).eval()


def load_trainer_state(folder: str | Path) -> dict:
    """The optimizer/RNG/data-position state of a checkpoint, read without running pickled code
    (torch.load with weights_only=True: tensors, numbers, strings, lists and dicts only)."""
    path = Path(folder) / "trainer.pt"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no trainer.pt, cannot resume from it")
    verify(folder)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refuses anything but plain data
        raise CheckpointError(f"{path}: cannot be read safely: {err}") from None
    if not isinstance(state, dict) or type(state.get("step")) is not int:
        raise CheckpointError(f"{path}: not a trainer state (no step); the file is damaged")
    return state


def load_pretrained(folder: str | Path, device: str | torch.device = "cpu"):
    """A minitune checkpoint folder or a Hugging Face T5 folder: (model, tokenizer file, info)."""
    from minitune.interop.t5 import is_t5_folder, load_t5

    folder = Path(folder)
    if is_t5_folder(folder):
        tokenizer_file = folder / "spiece.model"
        if not tokenizer_file.is_file():
            raise CheckpointError(f"{folder}: a T5 folder needs its spiece.model tokenizer")
        return load_t5(folder).to(device), tokenizer_file, {"source": "t5", "step": 0}
    model, info = load_model(folder, device)
    _check_tokenizer(folder / "tokenizer.model")
    return model, folder / "tokenizer.model", info


def _check_tokenizer(path: Path) -> None:
    """A tokenizer file that SentencePiece cannot read is reported by name."""
    from minitune.tokenizer import Tokenizer

    try:
        Tokenizer(path)
    except (RuntimeError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a usable SentencePiece model ({err})") from None


def load_checkpoint(checkpoint: str, device: str, fused_kernels: str = "auto"):
    """(model, tokenizer, info) of a minitune checkpoint folder or a Hugging Face T5 / Flan-T5
    folder; LoRA adapters are merged in. `fused_kernels` (--fused-kernels): "on", "off" (the
    explicit arithmetic) or "auto" (on with CUDA only), model.use_fused_kernels."""
    from minitune.lora import merge_lora
    from minitune.run.device import fused_kernels_on, pick_device

    device = pick_device(device)
    model, tokenizer_file, info = load_pretrained(checkpoint, device)
    if model.lora is not None:
        merge_lora(model)  # an adapter checkpoint: fold the adapters in, as fast as the base
    model.use_fused_kernels(fused_kernels_on(fused_kernels, device))
    return model, Tokenizer(tokenizer_file), info
