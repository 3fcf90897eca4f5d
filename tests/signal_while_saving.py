"""`minitune` that sends itself a second signal while it saves last/, at a moment that the
stop-signal tests (tests/test_preemption.py) cannot hit from outside:

    python tests/signal_while_saving.py SIGINT train --config tiny ... --set train.save_every=1000

The signal (a real one, through the kernel) goes out in the middle of the first write of last/:
its weights written, trainer.pt and config.json not yet. With save_every beyond the run, that
write is the save a first stop signal made. "sent SIGINT while writing last.tmp" on stderr says
it went. The rest of the command line is minitune's.
"""

import signal
import sys
from pathlib import Path

import minitune.run.checkpoint as checkpoint
from minitune.cli import main

second = signal.Signals[sys.argv[1]]
real_save_safetensors = checkpoint.save_safetensors
sent = []


def save_then_signal(tensors, path):
    real_save_safetensors(tensors, path)
    if Path(path).parent.name == "last.tmp" and not sent:
        sent.append(second)
        signal.raise_signal(second)
        print(f"sent {second.name} while writing last.tmp", file=sys.stderr, flush=True)


checkpoint.save_safetensors = save_then_signal
sys.exit(main(sys.argv[2:]))
