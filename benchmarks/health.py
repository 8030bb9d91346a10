"""Benchmark of the health checks: drift and quality of 100 features × 100,000 reference rows × 100,000 current rows,
against the per-feature loop a user would write with scipy (ks_2samp, jensenshannon, a numpy PSI).

    python benchmarks/health.py                       # full size, median of 3 runs
    python benchmarks/health.py --features 20 --rows 20000 --runs 1   # quick check
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autotrader.monitor.drift import drift_table
from autotrader.monitor.quality import missing_table, range_table, correlation_change


def make_data(n_features, n_ref, n_cur, seed=0, shift=True):
    "Reference and current frames: normal, Student-t, log-normal and integer features; 1 % NaN in a tenth of them; a fifth shifted."
    rng = np.random.default_rng(seed)

    def block(n, shifted):
        cols = {}
        for j in range(n_features):
            kind = j % 4
            s = 0.3 if shifted and j % 5 == 0 else 0.0
            if kind == 0:
                x = rng.normal(s, 1, n)
            elif kind == 1:
                x = rng.standard_t(4, n) + s
            elif kind == 2:
                x = rng.lognormal(s, 0.5, n)
            else:
                x = rng.integers(0, 20, n).astype('float64') + (1 if s else 0)
            if j % 10 == 9:
                x[rng.random(n) < 0.01] = np.nan
            cols[f'f{j:03d}'] = x
        return pd.DataFrame(cols)

    return block(n_ref, False), block(n_cur, shift)


def library(ref, cur):
    t = {}
    t0 = time.perf_counter()
    d = drift_table(ref, cur)
    t['drift'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    missing_table(ref, cur)
    t['missing'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    range_table(ref, cur)
    t['range'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    correlation_change(ref, cur, rho1=d.rho1)
    t['correlation'] = time.perf_counter() - t0
    t['quality'] = t['missing'] + t['range'] + t['correlation']
    t['total'] = t['drift'] + t['quality']
    return t, d


def scipy_loop(ref, cur, bins=10, eps=1e-4):
    "The loop a user writes: per feature, drop NaN, ks_2samp, quantile bins from the reference, PSI and jensenshannon."
    from scipy.stats import ks_2samp
    from scipy.spatial.distance import jensenshannon

    out = {}
    t0 = time.perf_counter()
    for f in ref.columns:
        r, c = ref[f].dropna().to_numpy(), cur[f].dropna().to_numpy()
        ks = ks_2samp(r, c)
        edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        p = np.histogram(r, edges)[0] / len(r)
        q = np.histogram(c, edges)[0] / len(c)
        pe, qe = np.maximum(p, eps), np.maximum(q, eps)
        out[f] = dict(
            psi=float(np.sum((qe - pe) * np.log(qe / pe))),
            ks=ks.statistic,
            p=ks.pvalue,
            js=jensenshannon(p, q, base=2) ** 2,
        )
    return time.perf_counter() - t0, pd.DataFrame(out).T


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--features', type=int, default=100)
    ap.add_argument('--rows', type=int, default=100_000)
    ap.add_argument('--current-rows', type=int, default=None)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--no-shift', action='store_true', help='current window without the shifted fifth of the features')
    ap.add_argument('--json', metavar='FILE')
    a = ap.parse_args(argv)
    m = a.current_rows or a.rows
    print(
        f"health benchmark: {a.features} features × {a.rows:,} reference rows × {m:,} current rows{' (no shift)' if a.no_shift else ''}; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}"
    )
    t0 = time.perf_counter()
    ref, cur = make_data(a.features, a.rows, m, shift=not a.no_shift)
    print(f"data generated in {time.perf_counter() - t0:.1f} s")
    library(ref.iloc[:1000], cur.iloc[:1000])  # warm-up (imports, first calls)
    libs, loops = [], []
    for i in range(a.runs):
        t, d = library(ref, cur)
        libs.append(t)
        s, ls = scipy_loop(ref, cur)
        loops.append(s)
        print(
            f"run {i + 1}: library drift {t['drift']:.3f} s + quality {t['quality']:.3f} s (missing {t['missing']:.3f}, "
            f"range {t['range']:.3f}, correlation {t['correlation']:.3f}) = {t['total']:.3f} s; scipy loop (drift only) {s:.3f} s"
        )
    med = {
        k: statistics.median(x[k] for x in libs)
        for k in ('drift', 'missing', 'range', 'correlation', 'quality', 'total')
    }
    loop = statistics.median(loops)
    # the two agree where they compute the same thing (the loop bins NaN-free data without special bins)
    agree = float(np.max(np.abs(d['ks_stat'].reindex(ls.index).to_numpy() - ls['ks'].to_numpy())))
    print(
        f"\nmedian of {a.runs}: library drift {med['drift']:.3f} s, quality {med['quality']:.3f} s, drift + quality {med['total']:.3f} s"
    )
    print(f"median of {a.runs}: scipy per-feature loop {loop:.3f} s (drift only)")
    print(
        f"ratio: scipy loop / library drift = {loop / med['drift']:.1f}×; scipy loop / library drift + quality = {loop / med['total']:.1f}×"
    )
    print(
        f"max |KS library - KS scipy| over the features: {agree:.2e}; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    print(f"target < 2 s for drift + quality: {'met' if med['total'] < 2 else 'MISSED'}")
    if a.json:
        Path(a.json).write_text(
            json.dumps(dict(args=vars(a), library=libs, scipy_loop=loops, median=med, median_loop=loop), indent=2)
        )


if __name__ == '__main__':
    main()
