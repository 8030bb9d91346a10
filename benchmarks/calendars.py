"""Calendar benchmark: exchange calendars (exchange_calendars' XNYS) against the 24/7 calendar and against
exchange_calendars' own `trading_index`, on ten years of one-minute and hourly bars.

    python benchmarks/calendars.py              # median of 5 runs of each (about 30 s)
    python benchmarks/calendars.py --runs 9

Times, each the median of `--runs` calls after one warm-up call (so the one-off import of exchange_calendars and the
build of the exchange's schedule, printed separately, are not counted):
- expected bars: `expected_bars('XNYS', tf, 2014-01-02, 2023-12-30)` vs
  `ExchangeCalendar.trading_index(…, intervals=False, closed='left', force=True)` (the same bars: checked equal);
- completeness and the on-calendar check of validation on those ~1M one-minute bars, XNYS vs the same number of
  `crypto` bars (the calendar every ingest had before exchange calendars).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def median_time(f, runs):
    f()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--runs', type=int, default=5)
    a = ap.parse_args()
    import pandas as pd

    t = time.perf_counter()
    import exchange_calendars as xc

    imp = time.perf_counter() - t
    from autotrader.schema import Instrument, expected_bars, _sessions
    from autotrader.data.validation import completeness, _on_calendar

    t = time.perf_counter()
    _sessions('XNYS')
    build = time.perf_counter() - t
    cal = xc.get_calendar('XNYS', start='2013-01-01', end='2024-12-31')
    s, e = '2014-01-02', '2023-12-30'
    print(
        f"exchange_calendars {xc.__version__}, pandas {pd.__version__}; import {imp:.2f} s, XNYS schedule 1990→ built once "
        f"per process in {build:.2f} s (not counted)"
    )
    for tf, period in (('1m', '1min'), ('1h', '1h')):
        ours = expected_bars('XNYS', tf, s, e)
        theirs = pd.DatetimeIndex(
            cal.trading_index(s, '2023-12-29', period, intervals=False, closed='left', force=True)
        )
        assert len(ours) == len(theirs) and (ours == theirs).all(), f'{tf}: expected_bars differs from trading_index'
        a_ = median_time(lambda: expected_bars('XNYS', tf, s, e), a.runs)
        b_ = median_time(
            lambda: cal.trading_index(s, '2023-12-29', period, intervals=False, closed='left', force=True), a.runs
        )
        print(
            f"expected bars XNYS {tf} ({len(ours):,}): autotrader {a_:.4f} s, exchange_calendars trading_index {b_:.4f} s "
            f"(ratio {b_ / a_:.1f}x)"
        )
    x = expected_bars('XNYS', '1m', s, e)
    c = expected_bars('crypto', '1m', '2024-01-01', pd.Timestamp('2024-01-01', tz='UTC') + pd.Timedelta(minutes=len(x)))
    res = {}
    for name, ts in (('XNYS', x), ('crypto', c)):
        df = pd.DataFrame({'timestamp': ts, 'instrument': 'A'})
        res[name] = (
            median_time(lambda: completeness(df, [Instrument('A', name)], '1m'), a.runs),
            median_time(lambda: _on_calendar(df, {'A': name}, '1m'), a.runs),
        )
        print(
            f"{name:6s} {len(ts):,} one-minute bars: completeness {res[name][0]:.3f} s, on-calendar check {res[name][1]:.3f} s"
        )
    print(
        f"XNYS / crypto: completeness {res['XNYS'][0] / res['crypto'][0]:.2f}x, on-calendar {res['XNYS'][1] / res['crypto'][1]:.2f}x"
    )


if __name__ == '__main__':
    main()
