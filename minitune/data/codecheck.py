"""Check generated Python code by running it against test cases, in a separate process.

Code written by a model (or shipped as an answer) is never executed inside the training or
evaluation process: it runs in a fresh `python -I` subprocess, with a time limit per program
(`signal.alarm`), one for the whole batch, and (on POSIX systems) operating-system limits on the
child's CPU time and memory (`resource.setrlimit`), so a runaway program cannot take the machine.
This is a guard against accidents, not a security boundary: the code can still read and write
files as the user. `minitune eval` runs it only for the shipped suite, or with --run-code.
A program passes when every test case returns the expected value.

    results = check_programs([{"code": "def f(x):\\n    return x + 1\\n",
                               "entry_point": "f", "tests": [[[1], 2], [[5], 6]]}])
    results[0].passed  # True
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

# Runs in the child: reads programs as JSON on stdin, writes one result per program on stdout.
_HARNESS = r"""
import io, json, signal, sys

def on_alarm(signum, frame):
    raise TimeoutError("time limit")

signal.signal(signal.SIGALRM, on_alarm)
programs, limit = json.load(sys.stdin)
real_stdout, sys.stdout = sys.stdout, io.StringIO()  # what the programs print is not our output
results = []
for program in programs:
    passed, error = 0, ""
    try:
        signal.alarm(limit)
        namespace = {}
        exec(program["code"], namespace)
        fn = namespace[program["entry_point"]]
        for args, expected in program["tests"]:
            got = fn(*args)
            if got == expected and type(got) is type(expected):
                passed += 1
            elif not error:
                call = f"{program['entry_point']}{tuple(args)!r}"
                error = f"{call} returned {got!r}, expected {expected!r}"
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
    results.append([passed, error])
real_stdout.write(json.dumps(results))
"""


CPU_SECONDS = 60  # CPU time of one checking process (RLIMIT_CPU; then the OS stops it)
MEMORY_BYTES = 1 << 30  # address space of one checking process (RLIMIT_AS): 1 GiB


def _limit_resources() -> None:
    """Runs in the child before Python starts: cap its CPU time and memory."""
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


@dataclass
class CodeResult:
    passed: bool  # every test case returned the expected value
    n_passed: int
    n_tests: int
    error: str  # the first failure, or ""


def check_programs(
    programs: list[dict], time_limit: int = 2, batch_time_limit: float = 60.0
) -> list[CodeResult]:
    """Run each {"code", "entry_point", "tests"} in a child process; one result per program."""
    if not programs:
        return []
    payload = json.dumps([programs, time_limit])
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _HARNESS],
            input=payload,
            capture_output=True,
            text=True,
            timeout=batch_time_limit,
            preexec_fn=_limit_resources if os.name == "posix" else None,
        )
        raw = json.loads(done.stdout)
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        if len(programs) == 1:
            reason = "timed out" if isinstance(exc, subprocess.TimeoutExpired) else "crashed"
            return [CodeResult(False, 0, len(programs[0]["tests"]), f"the program {reason}")]
        # one program broke the batch (e.g. killed the process): check them one by one
        return [r for p in programs for r in check_programs([p], time_limit, batch_time_limit)]
    return [
        CodeResult(n == len(p["tests"]), n, len(p["tests"]), error)
        for p, (n, error) in zip(programs, raw, strict=True)
    ]
