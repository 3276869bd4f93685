"""Run the ``robustbench-lite`` CLI in a child process under a memory cap and measure it.

``run_cli`` returns the exit code, stderr and the child's peak resident memory in MB, so a
test can assert that a hostile file is refused with exit code 2, one line, and bounded memory.

The peak is the child's own ``VmHWM`` (``/proc/self/status``), written by the child at exit:
Linux carries the rusage ``ru_maxrss`` of the forking parent across ``exec``, so a child of a
large pytest process would report the parent's size. ``wait4``'s number is the fallback when
the child dies without running its exit handlers.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

#: Address-space cap of the child (MB): torch's import needs about 1 GB of it, and a bomb
#: would need far more, so it fails fast instead of swapping.
ADDRESS_SPACE_MB = 4000
#: The peak resident memory a refused hostile file may cost (python + torch are about 300 MB).
PEAK_MB = 1000


#: ``python -c PEAK_WRAPPER ARGS`` runs the CLI and writes its peak RSS (kB) to the file named
#: by ``$RBL_TEST_PEAK_FILE`` at exit.
PEAK_WRAPPER = """
import atexit, os, sys
def _peak():
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(os.environ["RBL_TEST_PEAK_FILE"], "w") as out:
        out.write(str(kb))
atexit.register(_peak)
from robustbench_lite.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def cli_argv(args: list[str]) -> list[str]:
    """The command line that runs ``robustbench-lite ARGS`` under the peak-reporting wrapper."""
    return [sys.executable, "-c", PEAK_WRAPPER, *args]


def peak_mb(peak_file: str, fallback_kb: float) -> float:
    """The child's own peak RSS in MB, else ``fallback_kb`` (from ``wait4``) in MB."""
    try:
        with open(peak_file) as handle:
            return int(handle.read()) / 1024
    except (OSError, ValueError):
        return fallback_kb / 1024


@dataclass(frozen=True)
class CliRun:
    code: int
    stdout: str
    stderr: str
    peak_mb: float
    #: CPU seconds (user + system) the child used: unlike wall time, not stretched by load.
    cpu_seconds: float = 0.0

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_cli(args: list[str], *, timeout_s: float = 120, mem_mb: int = ADDRESS_SPACE_MB) -> CliRun:
    """``python -m robustbench_lite ARGS`` with an address-space cap; its exit code, output and
    peak RSS (MB)."""

    def limit() -> None:
        cap = mem_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    peak_file = tempfile.mktemp(prefix="rbl-peak-")  # noqa: S306 - the child creates it
    env = dict(os.environ, OMP_NUM_THREADS="1", RBL_TEST_PEAK_FILE=peak_file)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(  # noqa: S603 - our own CLI with test arguments
            cli_argv(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            preexec_fn=limit,  # noqa: PLW1509 - no threads in the test process at this point
            env=env,
        )
        deadline = start + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return CliRun(
            code=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            peak_mb=peak_mb(peak_file, usage.ru_maxrss),
            cpu_seconds=usage.ru_utime + usage.ru_stime,
        )
