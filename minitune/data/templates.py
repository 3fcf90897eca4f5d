"""Prompts: how an instruction and its input become the text the encoder reads.

As in the seed example, the instruction comes first and the input follows it:

    format_prompt("Translate to French.", "The cat sleeps.")
    -> "Translate to French.\nThe cat sleeps."

With few-shot exemplars (input, output pairs), they are shown between the instruction and the
input, each as "Input: ... / Output: ...", and the prompt ends with "Output:" for the model to
continue:

    format_prompt("Add the numbers.", "2 + 2", exemplars=[("1 + 1", "2")])
    -> "Add the numbers.\nInput: 1 + 1\nOutput: 2\nInput: 2 + 2\nOutput:"
"""

from __future__ import annotations

from collections.abc import Sequence


def format_prompt(
    instruction: str, input: str = "", exemplars: Sequence[tuple[str, str]] = ()
) -> str:
    """The encoder's text for one example (see the module docstring)."""
    if not exemplars:
        return f"{instruction}\n{input}" if input else instruction
    shots = [f"Input: {x}\nOutput: {y}" for x, y in exemplars]
    return "\n".join([instruction, *shots, f"Input: {input}\nOutput:"])
