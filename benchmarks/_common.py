"What the benchmark scripts share: memory readings, size formatting, and running a measured child process."

import json
import resource
import subprocess
import sys
from pathlib import Path

MARK = '@@BENCH@@ '  # a child prints its result as one line: MARK + JSON


def status_kb(field):
    "VmRSS / VmHWM of this process from /proc (kB), or None off Linux."
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith(field + ':'):
                return int(line.split()[1])
    except OSError:
        return None


def maxrss_bytes():
    "Peak RSS of this process (Linux reports kB, macOS bytes)."
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == 'darwin' else r * 1024


def gb(b):
    if b >= 1024**3 * 0.995:
        return f"{b / 1024**3:.2f} GB"
    return f"{b / 1024**2:,.0f} MB" if b >= 10 * 1024**2 else f"{b / 1024**2:.1f} MB"


def emit(result: dict):
    "Child side: print the result for `run_child`."
    print(MARK + json.dumps(result), flush=True)


def run_child(argv, what, env=None) -> dict:
    "Run `python argv…` in a fresh process and return the last MARK line's JSON; exit with its output if it failed."
    p = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env)
    out = [l for l in p.stdout.splitlines() if l.startswith(MARK)]
    if p.returncode or not out:
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
        raise SystemExit(f"benchmark {what} failed (exit code {p.returncode})")
    return json.loads(out[-1][len(MARK) :])
