"""Wall time of `autotrader run all` on embedded defaults, per feature set: each run in a fresh temporary folder (no
settings file, no AUTOTRADER__ variables but the feature set), as a user runs it; prints each stage's seconds and the
wall time, and the median of the runs per feature set with the ratio standard / basic.

    python benchmarks/run_all.py                      # basic and standard, 1 run each (~10 min on 2 cores)
    python benchmarks/run_all.py --runs 3 --sets basic
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGE = re.compile(r'^(ingest|train|evaluate|rollout|health)\s+(\w+)\s+([\d.]+) s', re.M)


def one(feature_set: str, keep: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix='run-all-') as d:
        env = {k: v for k, v in os.environ.items() if not k.startswith('AUTOTRADER')}
        env['AUTOTRADER__FEATURES__SET'] = feature_set
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, '-m', 'autotrader.cli', 'run', 'all', '--no-progress'],
            cwd=d,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"run all failed ({feature_set}):\n{r.stdout}\n{r.stderr}")
        stages = {m[0]: (m[1], float(m[2])) for m in STAGE.findall(r.stdout)}
        if keep:
            (keep / f'{feature_set}-{int(t0)}.txt').write_text(r.stdout)
        return dict(feature_set=feature_set, wall_s=round(wall, 1), stages=stages, load=os.getloadavg())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--runs', type=int, default=1)
    ap.add_argument('--sets', default='basic,standard', help='feature sets, comma separated')
    ap.add_argument('--json', type=Path, help='write the raw results here')
    ap.add_argument('--keep', type=Path, help='folder for the printed output of each run')
    a = ap.parse_args()
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(a.runs):
        for fs in a.sets.split(','):
            r = one(fs.strip(), a.keep)
            results.append(r)
            print(
                f"{r['feature_set']:<9} run {i + 1}: wall {r['wall_s']:6.1f} s  "
                + '  '.join(f"{k} {s} {t:.0f}s" for k, (s, t) in r['stages'].items())
                + f"  (load average {r['load'][0]:.1f})",
                flush=True,
            )
    med = {
        fs: statistics.median(r['wall_s'] for r in results if r['feature_set'] == fs)
        for fs in dict.fromkeys(r['feature_set'] for r in results)
    }
    for fs, m in med.items():
        print(f"median wall time, {fs}: {m:.0f} s ({m / 60:.1f} min)")
    if 'basic' in med and 'standard' in med:
        print(f"standard / basic: {med['standard'] / med['basic']:.2f}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
