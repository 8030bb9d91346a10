"""Health on real data: false alarms on unshifted history and detection of planted shifts.

Replays `autotrader.pipelines.health.run_health` weekly, with the default settings except the instruments and the
timeframe, over real daily series that a package ships (`arch.data`: S&P 500 and NASDAQ Composite, 1999-2018,
XNYS) and over the hourly sim market; then plants shifts in the last half of the current window (84 bars before
the check) and counts how often the health check sees them:

- `vol x2`: every log return doubled (prices rebuilt from the returns);
- `mean +1 sd`: one standard deviation of the series' log returns added to every log return;
- `frozen`: one feature (a different one each time, seeded) stuck at its value at the shift;
- `missing`: one feature NaN from the shift on.

A replay *alerts* when it raises a warning or critical alert. A planted price shift counts as detected when the
drift or range check alerts; a frozen or missing feature when the missing check rates that very feature warning
or critical. Alerts the same replay raises without the plant are reported beside it.

    pip install arch                                  # the real series (pyproject [dev] extras)
    python benchmarks/health_calibration.py           # weekly replays of both series, 20 sim seeds
    python benchmarks/health_calibration.py --step 4 --plants 10 --seeds 5      # quicker: every 4th week
"""

import argparse
import importlib
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autotrader.config import load_settings
from autotrader.data.connectors import sim_bars
from autotrader.features.basic import make_feature_set
from autotrader.features.store import FeatureStore
from autotrader.pipelines.health import run_health
from autotrader.schema import BAR_COLUMNS

warnings.filterwarnings('ignore')
logging.getLogger('autotrader').setLevel(logging.ERROR)
SHIFTS = ('vol x2', 'mean +1 sd', 'frozen', 'missing')


def arch_bars(name: str, symbol: str) -> pd.DataFrame:
    "Daily OHLCV bars of `arch.data.<name>` in the canonical schema (session date 00:00 UTC)."
    d = importlib.import_module(f'arch.data.{name}').load()
    return pd.DataFrame(
        {
            'timestamp': pd.to_datetime(d.index).tz_localize('UTC'),
            'instrument': symbol,
            'timeframe': '1d',
            'open': d['Open'].to_numpy(float),
            'high': d['High'].to_numpy(float),
            'low': d['Low'].to_numpy(float),
            'close': d['Close'].to_numpy(float),
            'volume': d['Volume'].to_numpy(float),
            'source': 'arch',
        }
    )[BAR_COLUMNS]


def plant_prices(bars: pd.DataFrame, start, kind: str) -> pd.DataFrame:
    "Bars with every log return from `start` on doubled (`vol x2`) or raised by one sd (`mean +1 sd`), per instrument."
    out = []
    for _, b in bars.groupby('instrument', sort=False):
        b = b.sort_values('timestamp')
        r = np.log(b.close).diff().fillna(0).to_numpy()
        k = (b.timestamp >= start).to_numpy()
        r2 = np.where(k, r * 2, r) if kind == 'vol x2' else np.where(k, r + np.nanstd(r[~k][1:]), r)
        c = b.close.iloc[0] * np.exp(np.cumsum(r2))
        f = c / b.close.to_numpy()
        out.append(b.assign(open=b.open * f, high=b.high * f, low=b.low * f, close=c))
    return pd.concat(out, ignore_index=True)


def plant_feature(feats: pd.DataFrame, start, kind: str, feature: str) -> pd.DataFrame:
    "Features with `feature` frozen at its value at `start` (per instrument) or NaN from `start` on."
    f = feats.sort_values(['instrument', 'timestamp']).reset_index(drop=True)
    k = f.timestamp >= start
    if kind == 'missing':
        f.loc[k, feature] = np.nan
    else:
        first = f[k].groupby('instrument')[feature].transform('first')
        f.loc[k, feature] = first
    return f


def write_store(root, bars, feats, fs):
    store = FeatureStore(root)
    with store.transaction('bench') as tx:
        tx.write('bars', bars, kind='bars', version='1')
        tx.write(f'features/{fs.id}', feats, kind='features', version=fs.version, params=fs.params)


def alerting(r) -> list:
    return [a.check for a in r.alerts if a.level in ('warning', 'critical')]


def detected(r, kind: str, feature: str | None) -> bool:
    if kind in ('frozen', 'missing'):
        return r.missing.level.get(feature, 'ok') in ('warning', 'critical')
    return r.levels['drift'] in ('warning', 'critical') or r.levels['range'] in ('warning', 'critical')


def replay_points(bars, calendar, start_bar: int, step_weeks: int, lag_days: int = 1) -> list:
    "Every `step_weeks`-th Saturday 00:00 UTC (daily bars) after the `start_bar`-th bar, up to the last bar."
    ts = np.sort(bars.timestamp.unique())
    first, last = pd.Timestamp(ts[start_bar]), pd.Timestamp(ts[-1])
    sats = pd.date_range(
        first.normalize() + pd.Timedelta(days=(5 - first.weekday()) % 7 + lag_days - 1),
        last + pd.Timedelta(days=1),
        freq=f'{7 * step_weeks}D',
        tz='UTC',
    )
    return list(sats)


def series_run(label, bars, calendar, timeframe, symbols, step, plants, rng, tmp):
    "Weekly replays of one data set (unshifted), then `plants` replays per planted shift at random replay points."
    st = load_settings(
        overrides={'data.dir': str(Path(tmp) / label), 'data.timeframe': timeframe, 'instruments.symbols': symbols},
        env={},
    )
    fs = make_feature_set(st)
    t0 = time.perf_counter()
    feats = fs.compute(bars)
    write_store(st.store.dir, bars, feats, fs)
    min_bars = st.drift.current_bars * (1 + st.drift.min_chunks) + fs.lookback + 10  # warm-up, then enough chunks
    pts = replay_points(bars, calendar, min_bars, step) if timeframe == '1d' else step
    res = dict(
        label=label,
        rows=len(bars),
        features=len(fs.columns),
        replays=0,
        alerting=0,
        checks={},
        inconclusive=0,
        ok_while_short=0,
        psi_within=0,
    )
    for now in pts:
        r = run_health(st, now=now, send=False, write_metrics=False)
        res['replays'] += 1
        bad = alerting(r)
        res['alerting'] += bool(bad)
        for c in set(bad):
            res['checks'][c] = res['checks'].get(c, 0) + 1
        res['inconclusive'] += r.level == 'inconclusive'
        short = (
            (r.drift.n_cur[r.drift.level != 'info'] < st.drift.min_rows).any() if len(r.drift) else True
        )  # info: never supplied
        res['ok_while_short'] += bool(short and r.level == 'ok')
    res['seconds_unshifted'] = time.perf_counter() - t0
    # planted shifts at random replay points
    det = {k: [0, 0, 0] for k in SHIFTS}  # detected, plants, unshifted replay alerting at the same point
    num = [c for c in fs.columns if pd.api.types.is_numeric_dtype(feats[c]) and feats[c].notna().mean() > 0.5]
    for now in rng.choice(pts, size=min(plants, len(pts)), replace=False):
        now = pd.Timestamp(now)
        cur_bars = np.sort(bars.timestamp[bars.timestamp < now].unique())
        start = pd.Timestamp(cur_bars[-st.drift.current_bars // 2])
        b = bars[bars.timestamp < now + pd.Timedelta(days=1)]
        base = run_health(st, now=now, send=False, write_metrics=False)
        f0 = fs.compute(b)
        for kind in SHIFTS:
            d = Path(tmp) / f'{label}-plant'
            s2 = load_settings(
                overrides={'data.dir': str(d), 'data.timeframe': timeframe, 'instruments.symbols': symbols}, env={}
            )
            feature = None
            if kind in ('vol x2', 'mean +1 sd'):
                pb = plant_prices(b, start, kind)
                pf = fs.compute(pb)
            else:
                feature = str(rng.choice(num))
                pb, pf = b, plant_feature(f0, start, kind, feature)
            import shutil

            shutil.rmtree(d, ignore_errors=True)
            write_store(s2.store.dir, pb, pf, fs)
            r = run_health(s2, now=now, send=False, write_metrics=False)
            det[kind][0] += detected(r, kind, feature)
            det[kind][1] += 1
            det[kind][2] += detected(base, kind, feature)
    res['detection'] = det
    res['seconds'] = time.perf_counter() - t0
    return res


def sim_data(seed, days=120, symbols=(('BTC-USD', 'crypto'), ('ETH-USD', 'crypto'), ('EUR-USD', 'fx'))):
    start = pd.Timestamp('2024-01-01', tz='UTC')
    return pd.concat(
        [sim_bars(s, c, '1h', start, start + pd.Timedelta(days=days), seed=seed) for s, c in symbols], ignore_index=True
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        '--step', type=int, default=1, help='replay every STEP-th week of the real series (default 1: weekly)'
    )
    ap.add_argument('--plants', type=int, default=20, help='planted replays per shift and real series (default 20)')
    ap.add_argument(
        '--seeds',
        type=int,
        default=20,
        help='sim markets (default 20), each replayed weekly over its last 8 weeks with every shift planted at the end',
    )
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, sym in (('sp500', 'SPX'), ('nasdaq', 'NDX')):
            out.append(
                series_run(
                    f'{name} daily', arch_bars(name, sym), 'XNYS', '1d', f'{sym}:XNYS', a.step, a.plants, rng, tmp
                )
            )
            print_one(out[-1])
        sim = dict(
            label='sim hourly',
            rows=0,
            features=0,
            replays=0,
            alerting=0,
            checks={},
            inconclusive=0,
            ok_while_short=0,
            detection={k: [0, 0, 0] for k in SHIFTS},
            seconds=0.0,
        )
        for seed in range(a.seeds):
            bars = sim_data(seed)
            end = bars.timestamp.max().normalize()
            pts = [end - pd.Timedelta(weeks=w) for w in range(8)]
            r = series_run(
                f'sim-{seed}',
                bars,
                'crypto',
                '1h',
                'BTC-USD:crypto, ETH-USD:crypto, EUR-USD:fx',
                pts,
                1,
                np.random.default_rng(seed),
                tmp,
            )
            for k in ('rows', 'features', 'replays', 'alerting', 'inconclusive', 'ok_while_short', 'seconds'):
                sim[k] += r[k] if k != 'features' else 0
            sim['features'] = r['features']
            for c, v in r['checks'].items():
                sim['checks'][c] = sim['checks'].get(c, 0) + v
            for k in SHIFTS:
                sim['detection'][k] = [x + y for x, y in zip(sim['detection'][k], r['detection'][k])]
        out.append(sim)
        print_one(sim)
    print('\nsummary')
    tot = sum(r['replays'] for r in out)
    al = sum(r['alerting'] for r in out)
    print(f"false alarms on unshifted history: {al}/{tot} replays = {al / max(tot, 1):.1%} (target <= 5 %)")
    for k in SHIFTS:
        d = sum(r['detection'][k][0] for r in out)
        n = sum(r['detection'][k][1] for r in out)
        print(f"detection of {k}: {d}/{n} = {d / max(n, 1):.0%} (target >= 90 %)")
    print(f"replays that said ok while a check lacked rows: {sum(r['ok_while_short'] for r in out)}")


def print_one(r):
    print(
        f"\n{r['label']}: {r['rows']} bars, {r['features']} features, {r['replays']} weekly replays, {r['seconds']:.0f} s"
    )
    print(
        f"  alerting (warning/critical) on unshifted history: {r['alerting']}/{r['replays']} = {r['alerting'] / max(r['replays'], 1):.1%}"
        f" by check {r['checks'] or '{}'}; inconclusive {r['inconclusive']}; ok while a check lacked rows: {r['ok_while_short']}"
    )
    for k, (d, n, b) in r['detection'].items():
        print(
            f"  {k:>11}: detected {d}/{n}"
            + (f" = {d / n:.0%}" if n else '')
            + f" (the same replays unshifted: {b}/{n})"
        )


if __name__ == '__main__':
    main()
