"""The `autotrader` command in this process: `autotrader.cli.main(args)` with its own working directory, no AUTOTRADER_*
variable from the outside (plus `env`), and its stdout/stderr captured. For tests of what a command does; the few
tests of what a terminal shows (warnings, kernel messages) and of processes (signals, locks) keep a real child process."""

import contextlib
import io
import os
from dataclasses import dataclass

import pytest


@dataclass
class CliResult:
    "Shaped like subprocess.CompletedProcess, so tests read it alike."

    args: list
    returncode: int
    stdout: str
    stderr: str


def autotrader_cli(*args, cwd, env: dict | None = None) -> CliResult:
    "Run `autotrader ARGS` in process in `cwd`; the environment and the working directory are restored afterwards."
    from autotrader.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        for k in [k for k in os.environ if k.startswith('AUTOTRADER')]:
            mp.delenv(k)
        for k, v in (env or {}).items():
            mp.setenv(k, str(v))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in args])
    return CliResult(list(args), rc, out.getvalue(), err.getvalue())
