"""The errors of a training run that a user can fix, which the command line prints in one line.

A bad setting is refused by `TrainConfig` (a ValueError naming the field); these are the problems
found once the run starts: a folder that cannot be written, a missing GPU, a checkpoint that does
not fit the run, a loss that stopped being a number.
"""


class RunError(ValueError):
    """A problem with a run that the user can fix (folders, tokenizer, settings); the command
    line prints it without a traceback."""


class DivergenceError(RunError):
    """The loss or the gradient stopped being a finite number (the weights were not updated)."""
