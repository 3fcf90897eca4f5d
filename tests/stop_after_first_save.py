"""`minitune` with a Python-level callback standing in for a preemption: the run stops (exit
status 0) right after it first saves last/ with its trainer state, in every process. The rest
of the command line is minitune's, e.g. for tests/test_distributed.py:

    torchrun --nproc_per_node=2 tests/stop_after_first_save.py train ... --set train.save_every=4
"""

import sys

import minitune.train as training
from minitune.cli import main

real_save = training.save


def save_then_stop(run, state, name, with_trainer):
    real_save(run, state, name, with_trainer=with_trainer)
    if name == "last" and with_trainer:  # every process has saved (the save is collective)
        raise SystemExit(0)


training.save = save_then_stop
sys.exit(main(sys.argv[1:]))
