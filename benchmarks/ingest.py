"""Ingest benchmark: N instruments x M one-minute sim bars through fetch -> archive -> parse -> validate -> features -> store.

    python benchmarks/ingest.py                        # full size: 10 x 100,000 = 1,000,000 bars, median of 3 runs
    python benchmarks/ingest.py --runs 1 --instruments 2 --bars-per-instrument 5000    # a quick check
    python benchmarks/ingest.py --runs 0 --profile ingest.prof                         # one cProfile'd run only

How it measures (see benchmarks/README.md):
- Every measured run is its own fresh Python subprocess with its own fresh temporary data dir (archive + store),
  so each run's peak RSS is that process's high-water mark (`getrusage(RUSAGE_SELF).ru_maxrss`) and no cache
  (the sim's per-symbol `lru_cache`, the OS page cache of earlier stores aside) carries over between runs.
- In each subprocess a small warm-up ingest (other symbols, another temp dir) runs first: it pays the one-off
  Great Expectations import and context set-up (several seconds, once per process), which is not ingest cost.
- The timed figure is the wall clock of the `ingest()` call (end to end: settings, fetch, archive, parse,
  validate, features, store, and the summary built after `timings['total']`); the stages come from
  `IngestResult.timings`. The figure reported is the median over the runs; bars/s = bars / median seconds.
- Peak memory is the RSS high-water mark of the measuring process (interpreter + pandas + GX + warm-up + the run).
  tracemalloc is NOT used: it slows allocation-heavy code and misses Arrow's allocator, so its figure would be
  neither the time nor the memory the ingest really takes. The RSS just before the measured ingest is printed too,
  so the part the 1M-bar run itself adds is visible.
"""

from __future__ import annotations
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, gb, run_child, status_kb as _status_kb, maxrss_bytes as _maxrss_bytes  # noqa: E402

STAGES = ['fetch', 'archive', 'parse', 'validate', 'features', 'store']
START = '2024-01-01T00:00:00Z'  # crypto calendar: every minute is a bar, so start + N minutes = N bars
TARGET_SECONDS, TARGET_BYTES = 20.0, 2 * 1024**3

# ---------------------------------------------------------------- worker (one measured ingest per process)


def _du(path):
    return sum(f.stat().st_size for f in Path(path).rglob('*') if f.is_file())


def _settings(load_settings, root, symbols):
    ini = Path(root) / 'bench.ini'
    ini.write_text('')  # hermetic: no settings.ini from the cwd, no AUTOTRADER__ env
    return load_settings(
        ini,
        overrides={
            'data.dir': str(Path(root) / 'data'),
            'data.source': 'sim',
            'data.timeframe': '1m',
            'sim.outage_rate': '0',
            'instruments.symbols': ','.join(f'{s}:crypto' for s in symbols),
        },
        env={},
    )


def worker(spec):
    t = time.perf_counter()
    import gc
    import pandas as pd
    from autotrader.config import load_settings
    from autotrader.pipelines.ingest import ingest

    import_s = time.perf_counter() - t
    base = Path(spec['tmpdir'] or tempfile.gettempdir())
    start = pd.Timestamp(START)
    out = dict(import_seconds=import_s)
    # warm-up: other symbols (so the sim's per-symbol cache stays cold for the measured run), its own temp dir
    wdir = tempfile.mkdtemp(prefix='autotrader-bench-warmup-', dir=base)
    try:
        t = time.perf_counter()
        ingest(
            start=start,
            end=start + pd.Timedelta(minutes=spec['warmup_bars']),
            run_id='bench-warmup',
            progress=False,
            settings=_settings(load_settings, wdir, [f'WARMUP{i}' for i in range(2)]),
        )
        out['warmup_seconds'] = time.perf_counter() - t
    finally:
        shutil.rmtree(wdir, ignore_errors=True)
    n_ins, n_bars = spec['instruments'], spec['bars_per_instrument']
    symbols = [f'SIM{i}' for i in range(n_ins)]
    rdir = tempfile.mkdtemp(prefix='autotrader-bench-', dir=base)
    try:
        st = _settings(load_settings, rdir, symbols)
        end = start + pd.Timedelta(minutes=n_bars)
        gc.collect()
        out.update(rss_before=(_status_kb('VmRSS') or 0) * 1024, hwm_before=_maxrss_bytes())
        prof = None
        if spec.get('profile'):
            if spec['profiler'] == 'pyinstrument':
                from pyinstrument import Profiler

                prof = Profiler(interval=0.001)
                prof.start()
            else:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
        t = time.perf_counter()
        res = ingest(start=start, end=end, settings=st, run_id='bench', progress=False)
        wall = time.perf_counter() - t
        if prof is not None:
            if spec['profiler'] == 'pyinstrument':
                prof.stop()
                Path(spec['profile']).write_text(prof.output_text(unicode=False, color=False, show_all=False))
                Path(spec['profile']).with_suffix('.html').write_text(prof.output_html())
            else:
                prof.disable()
                prof.dump_stats(spec['profile'])
        m = res.metrics()
        out.update(
            wall=wall,
            timings={k: float(v) for k, v in res.timings.items()},
            metrics={k: (v if isinstance(v, (int, float, bool, str)) or v is None else str(v)) for k, v in m.items()},
            peak_rss=_maxrss_bytes(),
            expected_bars=n_ins * n_bars,
            archive_bytes=_du(st.archive.dir),
            store_bytes=_du(st.store.dir),
            archive_objects=len(res.archived),
        )
    finally:
        shutil.rmtree(rdir, ignore_errors=True)
    emit(out)


# ---------------------------------------------------------------- driver


def run_worker(args, profile=None):
    spec = dict(
        instruments=args.instruments,
        bars_per_instrument=args.bars_per_instrument,
        warmup_bars=args.warmup_bars,
        tmpdir=args.tmpdir,
        profile=profile,
        profiler=args.profiler,
    )
    r = run_child([__file__, '--_worker', json.dumps(spec)], 'worker')
    m = r['metrics']
    bad = [
        f"{k}={m[k]} (expected {r['expected_bars']})"
        for k in ('rows_in', 'rows_clean', 'feature_rows')
        if m[k] != r['expected_bars']
    ]
    if bad or m['rows_quarantined'] or not m['committed']:
        raise SystemExit(
            f"the run did not ingest exactly {r['expected_bars']:,} clean bars: {', '.join(bad)}; "
            f"quarantined={m['rows_quarantined']} committed={m['committed']}"
        )
    return r


def report(runs, n):
    med = lambda xs: statistics.median(xs)
    walls = [r['wall'] for r in runs]
    W = med(walls)
    rows = [(s, [r['timings'][s] for r in runs]) for s in STAGES]
    rows.append(('other', [r['wall'] - sum(r['timings'][s] for s in STAGES) for r in runs]))
    k = len(runs)
    head = f"{'stage':<10}" + ''.join(f"{'run ' + str(i + 1):>9}" for i in range(k)) + f"{'median s':>10}{'share':>8}"
    print(head)
    print('-' * len(head))
    for name, xs in rows:
        print(f"{name:<10}" + ''.join(f"{x:>9.2f}" for x in xs) + f"{med(xs):>10.2f}{med(xs) / W:>8.1%}")
    print('-' * len(head))
    print(f"{'total':<10}" + ''.join(f"{x:>9.2f}" for x in walls) + f"{W:>10.2f}{1:>8.0%}")
    print(f"{'bars/s':<10}" + ''.join(f"{n / x:>9,.0f}" for x in walls) + f"{n / W:>10,.0f}")
    print(f"{'peak RSS':<10}" + ''.join(f"{gb(r['peak_rss']):>9}" for r in runs))
    print(
        f"{'RSS before':<10}"
        + ''.join(f"{gb(r['rss_before']):>9}" for r in runs)
        + '   (after imports + warm-up, before the measured ingest)'
    )
    print(
        "'other' = time inside ingest() outside the six timed stages (settings, planning, the summary after timings['total'])."
    )
    r0 = runs[0]
    print(
        f"per process: import {med([r['import_seconds'] for r in runs]):.1f} s, warm-up ingest (GX import + context) "
        f"{med([r['warmup_seconds'] for r in runs]):.1f} s — not counted. On disk: archive {gb(r0['archive_bytes'])} "
        f"in {r0['archive_objects']:,} objects, store {gb(r0['store_bytes'])}."
    )
    peak = max(r['peak_rss'] for r in runs)
    ok_t, ok_m = W < TARGET_SECONDS, peak < TARGET_BYTES
    if n != 1_000_000:
        print("(the targets below are set for 1,000,000 bars; this run has a different size)")
    print(
        f"targets: < {TARGET_SECONDS:.0f} s end to end: {'MET' if ok_t else 'MISSED'} ({W:.1f} s); "
        f"peak memory < 2 GB: {'MET' if ok_m else 'MISSED'} ({gb(peak)})"
    )
    print(f"ingest {n:,} bars: median {W:.1f} s ({n / W:,.0f} bars/s), peak RSS {gb(peak)}")


def show_profile(path, top):
    import pstats

    st = pstats.Stats(path)
    print(f"\n== cProfile of one run ({path}): top {top} by cumulative time")
    st.sort_stats('cumulative').print_stats(top)
    print(f"== top {top} by own (total) time")
    st.sort_stats('tottime').print_stats(top)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--runs', type=int, default=3, help='measured runs, each in a fresh subprocess (default 3)')
    ap.add_argument(
        '--instruments', type=int, default=10, help='instruments SIM0..SIM{n-1}, crypto calendar (default 10)'
    )
    ap.add_argument(
        '--bars-per-instrument', type=int, default=100_000, help='one-minute bars per instrument (default 100,000)'
    )
    ap.add_argument(
        '--warmup-bars', type=int, default=1_440, help='bars per instrument of the warm-up ingest (2 instruments)'
    )
    ap.add_argument(
        '--tmpdir', default=None, help='parent folder of the temporary data dirs (default: the system temp dir)'
    )
    ap.add_argument(
        '--profile',
        metavar='FILE',
        help='also run one profiled ingest (not part of the median) and write its profile here',
    )
    ap.add_argument('--profiler', choices=['cprofile', 'pyinstrument'], default='cprofile')
    ap.add_argument('--top', type=int, default=25, help='rows of the printed cProfile listings')
    ap.add_argument('--json', metavar='FILE', help='write the raw per-run results here')
    ap.add_argument('--_worker', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._worker:
        return worker(json.loads(a._worker))
    n = a.instruments * a.bars_per_instrument
    print(
        f"ingest benchmark: {a.instruments} instruments x {a.bars_per_instrument:,} one-minute sim bars = {n:,} bars "
        f"(crypto calendar, sim.outage_rate=0, from {START}); {a.runs} run(s), each in a fresh process after a warm-up ingest; "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs",
        flush=True,
    )
    runs = []
    for i in range(a.runs):
        r = run_worker(a)
        runs.append(r)
        print(f"  run {i + 1}: {r['wall']:.2f} s, peak RSS {gb(r['peak_rss'])}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(runs, indent=1))
    if runs:
        print()
        report(runs, n)
    if a.profile:
        r = run_worker(a, profile=str(Path(a.profile).resolve()))
        print(
            f"\nprofiled run ({a.profiler}; overhead included, not in the median): {r['wall']:.2f} s, stages "
            + ', '.join(f"{s} {r['timings'][s]:.2f}" for s in STAGES)
        )
        if a.profiler == 'cprofile':
            show_profile(a.profile, a.top)
        else:
            print(Path(a.profile).read_text())


if __name__ == '__main__':
    main()
