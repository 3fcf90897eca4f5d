"""Reading instruction data: JSONL, Alpaca's JSON array, Dolly, and chat messages.

Every reader yields `Record`s: an instruction, an input (may be empty), the expected output, the
other fields of the record (`meta`: task, split, template, tests, ...), and where it came from
(`file:line`). Accepted shapes, one JSON object per line (JSONL) or all in one JSON array:

    {"instruction": ..., "input": ..., "output": ...}          Alpaca (input optional)
    {"instruction": ..., "context": ..., "response": ...}      Dolly (context optional)
    {"messages": [{"role": "user", "content": ...}, ...]}      chat: one record per assistant turn

A `.jsonl` file is always read line by line; other files starting with `[` as one JSON array.
The whole file is checked before anything is returned, and every problem is reported with its
file and line, e.g. `train.jsonl:3: malformed JSON: Expecting ',' delimiter (column 17)` or
`train.jsonl:2: missing field "output"`. Such problems raise `DataError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

MAX_REPORTED = 20  # problems listed in one error message
CHAT_INSTRUCTION = "Continue the conversation as the assistant."


class DataError(ValueError):
    """A problem in a user's data file. The message names the file and line."""


@dataclass
class Record:
    """One instruction example read from a file."""

    instruction: str
    input: str
    output: str
    meta: dict = field(default_factory=dict)  # every other field of the record
    where: str = ""  # "file:line"


def read_records(path: str | Path) -> list[Record]:
    """Read every example of a data file (format chosen by content); raise `DataError` listing
    every problem with file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})"
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    problems: list[str] = []
    is_array = path.suffix != ".jsonl" and text.lstrip().startswith("[")
    objects = _json_array(text, path, problems) if is_array else None
    if objects is None and not problems:
        objects = _json_lines(text, path, problems)
    records: list[Record] = []
    for obj, line in objects or []:
        records.extend(_to_records(obj, f"{path}:{line}", problems))
    if problems:
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        tail = [f"... and {more} more problem(s)"] if more else []
        raise DataError("\n".join(shown + tail))
    if not records:
        raise DataError(f"{path}: no examples found")
    return records


def _json_lines(text: str, path: Path, problems: list[str]) -> list[tuple[object, int]]:
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            objects.append((json.loads(line), number))
        except json.JSONDecodeError as err:
            problems.append(f"{path}:{number}: malformed JSON: {err.msg} (column {err.colno})")
    return objects


def _json_array(text: str, path: Path, problems: list[str]) -> list[tuple[object, int]] | None:
    """Items of a top-level JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    objects = []

    def skip_space(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    pos = skip_space(pos)
    if pos < len(text) and text[pos] == "]":
        return []
    while True:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            problems.append(f"{path}:{err.lineno}: malformed JSON: {err.msg} (column {err.colno})")
            return None
        objects.append((obj, text.count("\n", 0, pos) + 1))
        pos = skip_space(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip_space(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if text[pos + 1 :].strip():
                line = text.count("\n", 0, pos) + 1
                problems.append(f"{path}:{line}: unexpected text after the closing ]")
            return objects
        line = text.count("\n", 0, pos) + 1
        problems.append(f"{path}:{line}: malformed JSON: expected ',' or ']' between items")
        return None


def _string_field(obj: dict, name: str, where: str, problems: list[str], required: bool) -> str:
    if name not in obj:
        if required:
            problems.append(f'{where}: missing field "{name}"')
        return ""
    value = obj[name]
    if not isinstance(value, str):
        problems.append(f'{where}: field "{name}" must be a string, got {type(value).__name__}')
        return ""
    if required and not value.strip():
        problems.append(f'{where}: field "{name}" is empty')
    return value


def _to_records(obj: object, where: str, problems: list[str]) -> list[Record]:
    if not isinstance(obj, dict):
        problems.append(f"{where}: expected a JSON object, got {type(obj).__name__}")
        return []
    if "messages" in obj:
        return _chat_records(obj, where, problems)
    n_before = len(problems)
    if "response" in obj or "context" in obj:  # Dolly
        instruction = _string_field(obj, "instruction", where, problems, required=True)
        context = _string_field(obj, "context", where, problems, required=False)
        output = _string_field(obj, "response", where, problems, required=True)
        known = ("instruction", "context", "response")
    else:  # Alpaca
        instruction = _string_field(obj, "instruction", where, problems, required=True)
        context = _string_field(obj, "input", where, problems, required=False)
        output = _string_field(obj, "output", where, problems, required=True)
        known = ("instruction", "input", "output")
    if len(problems) > n_before:
        return []
    meta = {k: v for k, v in obj.items() if k not in known}
    return [Record(instruction, context, output, meta, where)]


def _chat_records(obj: dict, where: str, problems: list[str]) -> list[Record]:
    """One record per assistant turn: the conversation so far is the input."""
    messages = obj["messages"]
    shape = 'field "messages" must be a list of {"role": ..., "content": ...} objects'
    if not isinstance(messages, list) or not messages:
        problems.append(f"{where}: {shape}")
        return []
    instruction, history, records = CHAT_INSTRUCTION, [], []
    meta = {k: v for k, v in obj.items() if k != "messages"}
    for i, message in enumerate(messages):
        if not (isinstance(message, dict) and isinstance(message.get("content"), str)):
            problems.append(f"{where}: message {i}: {shape}")
            return []
        role, content = message.get("role"), message["content"]
        if role == "system" and i == 0:
            instruction = content
        elif role == "user":
            history.append(f"User: {content}")
        elif role == "assistant":
            if history:
                records.append(Record(instruction, "\n".join(history), content, meta, where))
            history.append(f"Assistant: {content}")
        else:
            problems.append(
                f'{where}: message {i}: role must be "user" or "assistant" (or "system" first), '
                f"got {role!r}"
            )
            return []
    if not records:
        problems.append(f"{where}: the conversation has no assistant reply to learn")
    return records
