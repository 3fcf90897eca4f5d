"""Stop signals: a run told to stop (by a scheduler, torchrun or a terminal) stops between two
steps, saves where it is, and exits with 128 + the signal's number.

    with StopSignals() as stop:         # train() holds the stop signals while it runs
        while state.step < cfg.max_steps:
            if stop.agreed(dist):          # one process or more received one: all stop here
                break                   # ... then save last/ and exit with 128 + stop.signum
            step()

Who sends them: a scheduler stops a job with SIGTERM, then SIGKILL after a grace period
(SLURM's KillWait, Kubernetes' terminationGracePeriodSeconds, 30 s by default); SLURM can warn
earlier with a signal of your choice (`--signal`, often SIGUSR1); torchrun's agent forwards
SIGTERM, SIGINT, SIGHUP and SIGQUIT to its workers and kills them 30 s later; a terminal sends
SIGINT for Ctrl-C and SIGHUP when it closes. Their default action ends the process on the spot,
losing every step since the last save.

While a `StopSignals` is active, SIGTERM, SIGINT, SIGHUP and SIGUSR1 are noted, not obeyed: the
handler only records the number (a step cut in the middle would be lost, and a process that left
in the middle of a collective would leave the others waiting). The loop asks between two steps;
under torchrun the processes agree with one all-reduce (the largest number wins), so a signal
that reached one worker stops them all at the same step, and they save last/ together.

- The first signal counts; later ones change nothing. torchrun forwards a terminal's Ctrl-C that
  every worker already got, and that second SIGINT must not cut the save short. To stop without
  saving, send SIGQUIT (Ctrl-\\) or SIGKILL: last/ is written atomically
  (minitune/run/checkpoint.py), so a save cut short leaves the previous one.
- A signal that was ignored when the run started stays ignored: `nohup` ignores SIGHUP so that a
  closed terminal does not end the run, and that is the user's choice. SIGINT is the exception: a
  non-interactive shell starts every background job (`minitune train ... &` in a script) with
  SIGINT ignored, so that the terminal's Ctrl-C meant for the script does not reach it. Nobody
  chose that for the run, and it would make a scheduler's `kill -INT` do nothing; so SIGINT is
  always handled.

`stop_at_once()` is for work with nothing to save (the pipeline's evaluation): there a stop
signal raises `Stopped` wherever the program is.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from minitune.run.distributed import Distributed

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)


def signal_name(signum: int) -> str:
    """The signal's name, e.g. 15 -> "SIGTERM"."""
    return signal.Signals(signum).name


class StopSignals:
    """While active (a `with` block), the stop signals are noted in `received` instead of ending
    the process; `agreed` is what the loop asks between two steps."""

    def __init__(self) -> None:
        self.received = 0  # the first stop signal this process received (0: none)
        self.signum = 0  # the one the processes agreed on, at the last `agreed` (0: none)
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        self._previous = _install(self._note)
        return self

    def __exit__(self, *exc) -> None:
        _restore(self._previous)

    def _note(self, signum: int, frame) -> None:
        self.received = self.received or signum  # the first one counts

    def agreed(self, dist: Distributed) -> int:
        """The stop signal of any process (the largest number, if they received different
        ones), the same in every process, or 0: none. Distributed, every process must call it
        at the same point (it is one all-reduce); one process: no communication at all.

        The handler writes only `received`, and this only `signum`: a signal that comes while
        the processes talk (Python runs the handler as soon as the all-reduce returns) is kept
        for the next step's all-reduce, not overwritten by this one's answer."""
        self.signum = dist.max(self.received) if dist.enabled else self.received
        return self.signum


class Stopped(BaseException):
    """A stop signal under `stop_at_once` (a BaseException, as KeyboardInterrupt is, so that no
    `except Exception` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


@contextlib.contextmanager
def stop_at_once() -> Iterator[None]:
    """While active, a stop signal raises `Stopped` at once: for work that has nothing to save."""

    def stop(signum: int, frame) -> None:
        raise Stopped(signum)

    previous = _install(stop)
    try:
        yield
    finally:
        _restore(previous)


def _install(handler: Callable) -> dict[int, object]:
    """Set `handler` for each stop signal (see the module docstring for the ones left alone);
    returns the handlers it replaced. Signals reach only the main thread, so elsewhere: none."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in STOP_SIGNALS:
        if signum == signal.SIGINT or signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    return previous


def _restore(previous: dict[int, object]) -> None:
    """Put back the handlers `_install` replaced (one set outside Python, None: the default)."""
    for signum, handler in previous.items():
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
