"""The safetensors file format: our own reader and writer, and the error a damaged file raises.

Safetensors (the Hugging Face format) is: 8 bytes little-endian header length N, N bytes of
JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}}, then the raw bytes.

    save_safetensors({"w": torch.ones(2, 3)}, "x.safetensors")
    load_safetensors("x.safetensors")   # {"w": tensor of shape (2, 3)}

Both minitune checkpoints (`minitune.run.checkpoint`) and Hugging Face T5 folders
(`minitune.interop.t5`) store their weights this way; this file imports neither, so neither
imports the other for it.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_FROM_NAME = {name: dtype for dtype, name in _DTYPES.items()}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (missing, truncated, inconsistent); names the file."""


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata=None) -> None:
    """Write tensors in the safetensors format (shared tensors are written once per name)."""
    header: dict[str, dict] = {}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {
            "dtype": _DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)  # pad so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for data in blobs:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a truncated or malformed file raises CheckpointError."""
    path = Path(path)
    raw = bytearray(path.read_bytes())
    if len(raw) < 8:
        raise CheckpointError(f"{path}: too short to be a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise CheckpointError(f"{path}: header says {n} bytes but the file is {len(raw)} bytes")
    try:
        header = json.loads(raw[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable header: {err}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the header is not a JSON object")
    header.pop("__metadata__", None)
    start = 8 + n
    tensors = {}
    for name, info in header.items():
        try:
            dtype = _FROM_NAME.get(info["dtype"])
            begin, end = (int(x) for x in info["data_offsets"])
            shape = [int(x) for x in info["shape"]]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {name!r} has a malformed entry") from None
        if dtype is None:
            raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        size = torch.empty((), dtype=dtype).element_size()
        count = 1
        for dim in shape:
            count *= dim
        if min(shape, default=0) < 0 or not 0 <= begin <= end or end - begin != count * size:
            raise CheckpointError(f"{path}: tensor {name!r}: shape and byte range disagree")
        if start + end > len(raw):
            raise CheckpointError(f"{path}: truncated (tensor {name!r} ends past the file)")
        if count == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        flat = torch.frombuffer(raw, dtype=dtype, count=count, offset=start + begin)
        tensors[name] = flat.reshape(shape).clone()
    return tensors
