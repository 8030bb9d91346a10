"""Feature benchmark: a full feature set on N instruments x M one-minute sim bars, and the indicators it shares with `ta`.

    python benchmarks/features.py                                  # 10 x 100,000 = 1,000,000 bars, median of 3 runs
    python benchmarks/features.py --runs 1 --bars-per-instrument 20000             # a quick check
    python benchmarks/features.py --set basic                                      # another registered set

How it measures (see benchmarks/README.md):
- Bars: `sim_bars` for SIM0..SIM{n-1} (crypto calendar, 1m, outage_rate=0, from 2024-01-01), generated once and cached as
  Parquet in the temp dir; generating them is not timed. Every worker process reads that file.
- Time (one worker process, after a warm-up call of each path on 2,000 bars, so imports and first-call costs are paid):
  * full set  — `FeatureSet.compute(bars)` of the set (default `standard`, default parameters): sort, every feature, key columns;
  * shared, autotrader — RSI(14), MACD(12, 26, 9: line, signal, histogram), Bollinger(20, 2: %b, width), ATR(14) and
    stochastic(14, 3: %K, %D) per instrument through `by_instrument`: one 1M x 9 frame;
  * shared, ta — the same 9 outputs from ta's classes per instrument (`RSIIndicator.rsi`, `MACD.macd/macd_signal/macd_diff`,
    `BollingerBands.bollinger_pband/bollinger_wband`, `AverageTrueRange.average_true_range`,
    `StochasticOscillator.stoch/stoch_signal`) into one 1M x 9 frame.
  Each is run --runs times, interleaved (full, ours, ta, full, ours, ta, …) so load on the machine hits all three alike;
  the figure is the median. The two shared results are checked to agree (relative 1e-9; ta's ATR warm-up zeros excluded).
- Peak memory: a separate fresh process reads the bars, collects garbage, notes its RSS, computes the full set once and
  reports its RSS high-water mark (`getrusage(RUSAGE_SELF).ru_maxrss`): the process's peak (interpreter + pandas + the
  1M bars + features), and the part computing the features added (peak - RSS before). tracemalloc is not used (it slows
  allocation-heavy code and misses Arrow's allocator).
"""

from __future__ import annotations
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, gb, run_child, status_kb as _status_kb, maxrss_bytes as _maxrss_bytes  # noqa: E402

START = '2024-01-01T00:00:00Z'
TARGET_SECONDS, TARGET_RATIO, TARGET_BYTES = 5.0, 10.0, 2 * 1024**3
SHARED = ['rsi', 'macd', 'macd_signal', 'macd_hist', 'bb_pctb', 'bb_width', 'atr', 'stoch_k', 'stoch_d']

# ---------------------------------------------------------------- the three computations


def ours_shared(bars):
    from autotrader.features.technical import atr, bollinger, by_instrument, macd, rsi, stochastic

    def block(b):
        m, s, d = macd(b.close)
        pb, wb = bollinger(b.close)
        k, kd = stochastic(b.high, b.low, b.close)
        return dict(zip(SHARED, (rsi(b.close), m, s, d, pb, wb, atr(b.high, b.low, b.close), k, kd)))

    return by_instrument(bars, block)


def ta_shared(bars):
    import numpy as np
    import pandas as pd
    import ta

    out = np.full((len(bars), len(SHARED)), np.nan)
    for sl in _blocks(bars):
        b = bars.iloc[sl]
        c, h, l = b.close, b.high, b.low
        M, B, S = ta.trend.MACD(c), ta.volatility.BollingerBands(c), ta.momentum.StochasticOscillator(h, l, c)
        cols = (
            ta.momentum.RSIIndicator(c).rsi(),
            M.macd(),
            M.macd_signal(),
            M.macd_diff(),
            B.bollinger_pband(),
            B.bollinger_wband(),
            ta.volatility.AverageTrueRange(h, l, c).average_true_range(),
            S.stoch(),
            S.stoch_signal(),
        )
        for j, x in enumerate(cols):
            out[sl, j] = x.to_numpy()
    return pd.DataFrame(out, columns=SHARED)


def _blocks(bars):
    from autotrader.features.technical import instrument_blocks

    return instrument_blocks(bars)


def _load(path):
    import pandas as pd

    b = pd.read_parquet(path)
    return b.sort_values(['instrument', 'timestamp'], kind='stable').reset_index(drop=True)


def _check_agree(a, b):
    import numpy as np

    for j, name in enumerate(SHARED):
        x, y = a[name].to_numpy(), b[name].to_numpy().copy()
        if name == 'atr':
            for sl in _blocks_cached:
                y[sl.start : sl.start + 13] = np.nan  # ta: 0 during ATR's warm-up, we: NaN
        if not (np.isnan(x) == np.isnan(y)).all():
            raise SystemExit(f"{name}: NaN rows differ between autotrader and ta")
        ok = ~np.isnan(x)
        rel = np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-12)
        if len(rel) and rel.max() > 1e-9:
            raise SystemExit(f"{name}: autotrader and ta differ by {rel.max():.2e} (relative)")


_blocks_cached = []

# ---------------------------------------------------------------- workers


def worker(spec):
    import gc

    warnings.simplefilter('ignore')
    from autotrader.features.basic import feature_set

    fs = feature_set(spec['set'])
    if spec['mode'] == 'memory':
        bars = _load(spec['bars'])
        gc.collect()
        before, hwm0 = (_status_kb('VmRSS') or 0) * 1024, _maxrss_bytes()
        t = time.perf_counter()
        f = fs.compute(bars)
        wall = time.perf_counter() - t
        out = dict(
            rss_before=before,
            hwm_before=hwm0,
            peak=_maxrss_bytes(),
            wall=wall,
            rows=len(f),
            columns=f.shape[1] - 3,
            frame_bytes=int(f.memory_usage(deep=False).sum()),
        )
    else:
        bars = _load(spec['bars'])
        _blocks_cached[:] = _blocks(bars)
        small = bars.groupby('instrument').head(200).reset_index(drop=True)
        fs.compute(small)
        ours_shared(small)
        ta_shared(small)  # warm-up: imports, first calls
        _check_agree(ours_shared(bars), ta_shared(bars))
        full, ours, theirs = [], [], []
        for _ in range(spec['runs']):
            for fn, acc in ((fs.compute, full), (ours_shared, ours), (ta_shared, theirs)):
                gc.collect()
                t = time.perf_counter()
                r = fn(bars)
                acc.append(time.perf_counter() - t)
                del r
        out = dict(full=full, ours=ours, ta=theirs, columns=len(fs.columns), lookback=fs.lookback, id=fs.id)
    emit(out)


def run_worker(spec):
    return run_child([__file__, '--_worker', json.dumps(spec)], f"worker ({spec['mode']})")


def make_bars(path, n_ins, n_bars):
    import pandas as pd
    from autotrader.data.connectors import sim_bars

    s = pd.Timestamp(START)
    e = s + pd.Timedelta(minutes=n_bars)
    b = pd.concat([sim_bars(f'SIM{i}', 'crypto', '1m', s, e, outage_rate=0) for i in range(n_ins)], ignore_index=True)
    assert len(b) == n_ins * n_bars, len(b)
    b.to_parquet(path, index=False)


# ---------------------------------------------------------------- driver


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument(
        '--runs', type=int, default=3, help='timed runs of each computation (default 3; the median is reported)'
    )
    ap.add_argument('--instruments', type=int, default=10)
    ap.add_argument('--bars-per-instrument', type=int, default=100_000)
    ap.add_argument('--set', default='standard', help='registered feature set, default parameters (default: standard)')
    ap.add_argument('--tmpdir', default=None, help='where the cached bars file lives (default: the system temp dir)')
    ap.add_argument('--json', metavar='FILE', help='write the raw results here')
    ap.add_argument('--_worker', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._worker:
        return worker(json.loads(a._worker))
    n = a.instruments * a.bars_per_instrument
    print(
        f"feature benchmark: set {a.set!r} on {a.instruments} instruments x {a.bars_per_instrument:,} one-minute sim bars "
        f"= {n:,} bars; median of {a.runs}; python {sys.version.split()[0]}, {os.cpu_count()} CPUs",
        flush=True,
    )
    path = (
        Path(a.tmpdir or tempfile.gettempdir())
        / f'autotrader-bench-bars-{a.instruments}x{a.bars_per_instrument}.parquet'
    )
    if not path.exists():
        t = time.perf_counter()
        make_bars(path, a.instruments, a.bars_per_instrument)
        print(f"  generated the bars in {time.perf_counter() - t:.1f} s (cached: {path})", flush=True)
    mem = run_worker(dict(mode='memory', bars=str(path), set=a.set))
    tim = run_worker(dict(mode='time', bars=str(path), set=a.set, runs=a.runs))
    if a.json:
        Path(a.json).write_text(json.dumps(dict(memory=mem, time=tim), indent=1))
    med = statistics.median
    F, O, T = med(tim['full']), med(tim['ours']), med(tim['ta'])
    fmt = lambda xs: '  '.join(f'{x:6.2f}' for x in xs)
    print(f"\n{'computation':<44}{'runs (s)':<{8 * a.runs}}{'median s':>10}{'bars/s':>14}")
    label = f"full set {tim['id']} ({tim['columns']} features)"
    print(f"{label:<44}{fmt(tim['full']):<{8 * a.runs}}{F:>10.2f}{n / F:>14,.0f}")
    print(f"{'shared indicators, autotrader (9 outputs)':<44}{fmt(tim['ours']):<{8 * a.runs}}{O:>10.2f}{n / O:>14,.0f}")
    print(f"{'shared indicators, ta 0.11 (same 9 outputs)':<44}{fmt(tim['ta']):<{8 * a.runs}}{T:>10.2f}{n / T:>14,.0f}")
    print(f"\nta / autotrader on the shared indicators: {T / O:.1f}x   (outputs agree to 1e-9 relative)")
    print(
        f"peak memory computing the full set once (fresh process): peak RSS {gb(mem['peak'])}; RSS before {gb(mem['rss_before'])} "
        f"(interpreter, pandas, the {n:,} bars); added by the computation {gb(mem['peak'] - mem['rss_before'])}; "
        f"the result frame {gb(mem['frame_bytes'])} ({mem['rows']:,} rows x {mem['columns']} features + keys)"
    )
    if n != 1_000_000:
        print("(the targets are set for 1,000,000 bars; this run has a different size)")
    print(
        f"targets: full set < {TARGET_SECONDS:.0f} s: {'MET' if F < TARGET_SECONDS else 'MISSED'} ({F:.2f} s); "
        f"shared indicators >= {TARGET_RATIO:.0f}x faster than ta: {'MET' if T / O >= TARGET_RATIO else 'MISSED'} ({T / O:.1f}x); "
        f"peak memory < 2 GB: {'MET' if mem['peak'] < TARGET_BYTES else 'MISSED'} ({gb(mem['peak'])})"
    )


if __name__ == '__main__':
    main()
