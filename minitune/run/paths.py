"""Shipped files (configs, tokenizer, data, the base checkpoint) found from any folder.

A config names files relative to the project: `data/train.jsonl`, `tokenizer/minitune.model`.
A path that exists where the user runs `minitune` is theirs and wins; otherwise a relative path is
looked up among the shipped files, which live in one of two places:

    <site-packages>/minitune/shipped/{configs,...}   an install (setup.py copies them)
    <project>/{configs,data,tokenizer,checkpoints}   a checkout, or `pip install -e`

    find_shipped("data/train.jsonl")  -> /home/me/minitune/data/train.jsonl (from any folder)
    config_file("finetune")           -> .../configs/finetune.toml (a shipped config by name)
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # minitune/, above run/
SHIPPED_DIRS = ("configs", "data", "tokenizer", "checkpoints")


def shipped_root() -> Path | None:
    """The folder that holds the shipped configs/, data/ and tokenizer/, or None."""
    for root in (PACKAGE / "shipped", PACKAGE.parent):
        if (root / "configs").is_dir() and (root / "tokenizer").is_dir():
            return root
    return None


def find_shipped(path: str | Path) -> Path:
    """`path` itself when it exists (relative to the current folder); else the shipped file of
    that relative name when there is one; else `path` unchanged (its reader reports it missing).

    Example: in /tmp, "data/valid.jsonl" -> <project>/data/valid.jsonl; "my.jsonl" -> my.jsonl.
    """
    path = Path(path)
    try:
        if path.exists() or path.is_absolute():
            return path
        root = shipped_root()
        parts = path.parts
        if root is not None and parts and parts[0] in SHIPPED_DIRS and (root / path).exists():
            return root / path
    except (OSError, ValueError):  # a name the system cannot look up: its reader will say so
        pass
    return path


def resolve_file(path: str) -> str:
    """`find_shipped` as an absolute path string when the file exists (saved in checkpoints, so
    a run folder says which file it was trained on, whatever folder it is resumed from); a
    missing file's name is kept as given, for its reader's error message."""
    found = find_shipped(path)
    try:
        return str(found.absolute()) if found.exists() else str(path)
    except (OSError, ValueError):
        return str(path)


def shipped_configs() -> list[str]:
    """Names of the shipped run configs (configs/*.toml without the suffix)."""
    root = shipped_root()
    return sorted(p.stem for p in (root / "configs").glob("*.toml")) if root else []


def config_file(name: str | Path) -> Path:
    """A run config: a path (relative to the current folder, or shipped: configs/laptop.toml) or
    the name of a shipped config ("laptop", "tiny", "finetune", "pretrain").

    Raises ValueError with one line naming what was looked for and the shipped names."""
    path = find_shipped(name)
    if path.is_file():
        return path
    root = shipped_root()
    if (
        root is not None
        and Path(name).suffix == ""
        and (root / "configs" / f"{name}.toml").is_file()
    ):
        return root / "configs" / f"{name}.toml"
    where = "in the current folder" + (" nor among the shipped configs" if root else "")
    raise ValueError(
        f"{name}: no such config file ({where}; shipped: {', '.join(shipped_configs()) or 'none'})"
    )


def is_shipped(path: str | Path) -> bool:
    """Whether `path` is one of the shipped data files (whose code answers minitune may run)."""
    root = shipped_root()
    if root is None:
        return False
    try:
        return Path(path).resolve().is_relative_to((root / "data").resolve())
    except OSError:
        return False
