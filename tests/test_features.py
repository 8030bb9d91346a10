"""Features: causality (hypothesis, every feature), agreement with `ta`, incremental = full, fitted regimes,
point-in-time store reads, training sets, latest rows, and the ingest pipeline computing the `standard` set."""

import hashlib
import json
import warnings
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings as hsettings, strategies as st
from hypothesis.extra.numpy import arrays

from autotrader.config import load_settings
from autotrader.data.connectors import sim_bars
from autotrader.features import microstructure as M, regime as R, technical as T
from autotrader.features.basic import feature_set, make_feature_set
from autotrader.features.sets import STANDARD_DEFAULTS, describe_features
from autotrader.features.store import FeatureStore, StoreError, bar_close, forward_log_return, training_set

# Small windows, so that 30–150 generated bars exercise every column past its warm-up.
SMALL = dict(
    return_horizons=[1, 3],
    vol_windows=[4],
    rsi_window=3,
    macd_windows=[3, 6, 2],
    bb_window=4,
    bb_k=2.0,
    atr_window=3,
    stoch_windows=[4, 2],
    ma_windows=[5],
    mom_windows=[4],
    zscore_window=5,
    micro_window=4,
    regime_window=8,
    regime_vol_window=3,
    regime_quantiles=[1 / 3, 2 / 3],
    trend_window=4,
    trend_threshold=0.5,
)
SETS = {
    'basic': feature_set('basic', return_horizons=[1, 3], vol_windows=[4]),
    'standard': feature_set('standard', **SMALL),
}
BASE = pd.Timestamp('2024-01-01', tz='UTC')
FAST = hsettings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


# ---------------------------------------------------------------- generated bars

finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def ohlcv(draw, n, min_move=0.0):
    "n valid bars: close = 100·exp(Σr), open = previous close·exp(gap), high/low beyond both, volume ≥ 0 (zeros allowed)."
    r = draw(arrays('float64', n, elements=st.floats(-0.3, 0.3, **finite)))
    if min_move:
        r = np.where(r >= 0, 1, -1) * (min_move + np.abs(r))
    gap = draw(arrays('float64', n, elements=st.floats(-0.05, 0.05, **finite)))
    up = draw(arrays('float64', n, elements=st.floats(0, 0.2, **finite)))
    dn = draw(arrays('float64', n, elements=st.floats(0, 0.2, **finite)))
    vol = draw(arrays('float64', n, elements=st.one_of(st.just(0.0), st.floats(0, 1e6, **finite))))
    c = 100 * np.exp(np.cumsum(r))
    o = np.r_[100.0, c[:-1]] * np.exp(gap)
    return dict(open=o, high=np.maximum(o, c) * np.exp(up), low=np.minimum(o, c) * np.exp(-dn), close=c, volume=vol)


@st.composite
def bar_frames(draw, n_min=30, n_max=150, max_instruments=3):
    "Canonical hourly bars of 1–3 instruments, with gaps, sometimes with bid/ask quotes and a vwap column."
    quotes, vwap = draw(st.booleans()), draw(st.booleans())
    frames = []
    for k in range(draw(st.integers(1, max_instruments))):
        n = draw(st.integers(n_min, n_max))
        d = draw(ohlcv(n))
        hours = np.cumsum(draw(arrays('int64', n, elements=st.sampled_from([1, 1, 1, 1, 2, 5]))))
        f = pd.DataFrame(
            {
                'timestamp': BASE + pd.to_timedelta(hours, 'h'),
                'instrument': f'I{k}',
                'timeframe': '1h',
                **d,
                'source': 'gen',
            }
        )
        if quotes:
            half = draw(arrays('float64', n, elements=st.floats(0, 0.01, **finite)))
            f['bid'], f['ask'] = f.close * (1 - half), f.close * (1 + half)
        if vwap:
            f['vwap'] = (f.high + f.low + 2 * f.close) / 4
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


@st.composite
def changed_after(draw, bars, t=None):
    "A cut time t (drawn unless given) and a version of `bars` in which any bar after t is replaced, deleted, or added."
    ts = np.sort(bars.timestamp.unique())
    t = pd.Timestamp(ts[draw(st.integers(0, len(ts) - 1))]) if t is None else t
    after = (bars.timestamp > t).to_numpy()
    new = bars.copy()
    how = draw(st.sampled_from(['replace', 'delete', 'append', 'all']))
    if how in ('replace', 'all') and after.any():
        repl = draw(ohlcv(int(after.sum())))
        for c, v in repl.items():
            new.loc[after, c] = v
        if 'bid' in new:
            new.loc[after, 'bid'], new.loc[after, 'ask'] = new.close[after] * 0.99, new.close[after] * 1.02
        if 'vwap' in new:
            new.loc[after, 'vwap'] = new.close[after]
    if how in ('delete', 'all') and after.any():
        drop = draw(arrays(bool, int(after.sum()), elements=st.booleans()))
        new = new.drop(index=new.index[after][drop])
    if draw(st.booleans()):  # the source starts giving quotes / VWAP after t
        later = (new.timestamp > t).to_numpy()
        for c, k in (('bid', 0.99), ('ask', 1.01), ('vwap', 1.0)):
            if c not in new:
                new[c] = np.where(later, new.close * k, np.nan)
    if how in ('append', 'all'):
        k = draw(st.integers(1, 20))
        d = draw(ohlcv(k))
        last = max(new.timestamp.max(), t)  # strictly after t
        for sym in draw(st.lists(st.sampled_from(['I0', 'I1', 'NEW']), min_size=1, max_size=2, unique=True)):
            add = pd.DataFrame(
                {
                    'timestamp': last + pd.to_timedelta(np.arange(1, k + 1), 'h'),
                    'instrument': sym,
                    'timeframe': '1h',
                    **d,
                    'source': 'gen',
                }
            )
            new = pd.concat([new, add], ignore_index=True)
    return t, new.sample(frac=1, random_state=0).reset_index(drop=True)  # row order must not matter either


def known_at(f, t):
    return f[f.timestamp <= t].sort_values(['instrument', 'timestamp']).reset_index(drop=True)


# ---------------------------------------------------------------- 1. causality, every feature


@pytest.mark.parametrize('name', list(SETS))
@FAST
@given(data=st.data())
def test_no_feature_at_or_before_t_depends_on_bars_after_t(name, data):
    fs = SETS[name]
    bars = data.draw(bar_frames())
    t, later = data.draw(changed_after(bars))
    a, b = known_at(fs.compute(bars), t), known_at(fs.compute(later), t)
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # bit for bit, NaN where NaN


def test_the_causality_property_is_not_vacuous():
    "With the small windows, every column of both sets has values on generated-size data (quotes: spread columns too)."
    b = sim_bars('X', 'crypto', '1h', '2024-01-01', '2024-01-04').assign(
        bid=lambda d: d.close * 0.999, ask=lambda d: d.close * 1.001
    )
    for fs in SETS.values():
        f = fs.compute(b.iloc[:40])
        assert f.iloc[:, 3:].notna().any().all(), f.columns[~f.notna().any()].tolist()
    # the small-window set has every feature definition the default one has (only windows differ)
    assert set(describe_features(SETS['standard']).formula) == set(describe_features(feature_set('standard')).formula)


def test_daily_windows_are_causal_and_warm_up_in_about_a_year():
    "On daily bars the default set's windows are sized for days: every value at or before t ignores the bars after t."
    st_ = load_settings(overrides={'data.timeframe': '1d', 'features.set': 'standard'})
    fs = make_feature_set(st_)
    assert fs.params['regime_window'] == 126 and fs.params['return_horizons'] == [1, 5, 20]
    bars = sim_bars('X', 'XNYS', '1d', '2019-01-01', '2022-06-01', outage_rate=0)
    t = bars.timestamp.iloc[600]
    later = bars.copy()
    after = later.timestamp > t
    for c in ('open', 'high', 'low', 'close'):
        later.loc[after, c] *= 1.5
    later.loc[after, 'volume'] *= 3
    a, b = known_at(fs.compute(bars), t), known_at(fs.compute(later), t)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    f = fs.compute(bars)
    f = f[[c for c in f.columns if not c.startswith('spread')]]  # quoted spreads: empty on OHLCV bars
    warm_up = int((~f.iloc[:, 3:].notna().all(axis=1)).sum())
    assert warm_up == 199  # the 200-day moving average; with the hourly-sized windows: 743 bars, three years of days


ONE = {  # every public single-instrument function, on arrays
    'log_return': lambda d: T.log_return(d['close'], 3),
    'vol_close': lambda d: T.vol_close(d['close'], 4),
    'vol_parkinson': lambda d: T.vol_parkinson(d['high'], d['low'], 4),
    'vol_garman_klass': lambda d: T.vol_garman_klass(d['open'], d['high'], d['low'], d['close'], 4),
    'vol_yang_zhang': lambda d: T.vol_yang_zhang(d['open'], d['high'], d['low'], d['close'], 4),
    'rsi': lambda d: T.rsi(d['close'], 3),
    'macd': lambda d: np.c_[T.macd(d['close'], 3, 6, 2)],
    'bollinger': lambda d: np.c_[T.bollinger(d['close'], 4)],
    'atr': lambda d: T.atr(d['high'], d['low'], d['close'], 3),
    'stochastic': lambda d: np.c_[T.stochastic(d['high'], d['low'], d['close'], 4, 2)],
    'ma_distance': lambda d: T.ma_distance(d['close'], 5),
    'momentum': lambda d: T.momentum(d['close'], 4),
    'zscore': lambda d: T.zscore(d['volume'], 5),
    'rolling_max': lambda d: T.rolling_max(d['high'], 5),
    'amihud': lambda d: M.amihud(d['close'], d['volume'], 4),
    'roll_spread': lambda d: M.roll_spread(d['close'], 4),
    'corwin_schultz': lambda d: M.corwin_schultz(d['high'], d['low'], d['close'], 4),
    'tick_sign': lambda d: M.tick_sign(d['close'], 3),
    'ewm_mean_with_gaps': lambda d: T.ewm_mean(np.where(d['volume'] == 0, np.nan, d['close']), 0.3, 3),
    'vwap_distance_partial_vwap': lambda d: M.vwap_distance(
        d['high'], d['low'], d['close'], d['volume'], 4, vwap=np.where(d['volume'] > 5e5, d['close'], np.nan)
    ),
    'bvc_share': lambda d: M.bvc_share(T.log_return(d['close']), T.vol_close(d['close'], 4)),
    'vwap_distance': lambda d: M.vwap_distance(d['high'], d['low'], d['close'], d['volume'], 4),
    'vol_percentile': lambda d: R.vol_percentile(T.vol_close(d['close'], 3), 6),
    'trend_regime': lambda d: R.trend_regime(d['close'], 4, 0.5),
    'regime_bars': lambda d: R.regime_bars(R.trend_regime(d['close'], 4, 0.5), 5),
}


@pytest.mark.parametrize('fn', list(ONE))
@hsettings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_function_is_causal(fn, data):
    n = data.draw(st.integers(2, 80))
    t = data.draw(st.integers(0, n - 1))
    d = data.draw(ohlcv(n))
    e = {k: v.copy() for k, v in d.items()}
    repl = data.draw(ohlcv(n))
    for k in e:
        e[k][t + 1 :] = repl[k][t + 1 :]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        a, b = np.asarray(ONE[fn](d), float), np.asarray(ONE[fn](e), float)
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])


# ---------------------------------------------------------------- 2. fitted regimes


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fitted_volatility_regime_learns_only_from_its_window(data):
    bars = data.draw(bar_frames(n_min=40, n_max=120, max_instruments=2))
    ts = np.sort(bars.timestamp.unique())
    i = data.draw(st.integers(0, len(ts) // 2))
    j = data.draw(st.integers(i + 10, len(ts) - 1)) if i + 10 < len(ts) else None
    assume(j is not None)
    start, end = pd.Timestamp(ts[i]), pd.Timestamp(ts[j])
    vr = R.VolatilityRegime(window=4, max_bars=6)
    try:
        vr.fit(bars, start=start, end=end)
    except ValueError:
        assume(False)
    # change any bar that closes after `end` (opens after end − 1h): the learnt state does not move
    _, later = data.draw(changed_after(bars, t=end - pd.Timedelta('1h')))
    vr2 = R.VolatilityRegime(window=4, max_bars=6).fit(later, start=start, end=end)
    pd.testing.assert_frame_equal(vr.thresholds_, vr2.thresholds_, check_exact=True)
    pd.testing.assert_series_equal(vr.n_fit_, vr2.n_fit_)
    # transform is causal: with fixed thresholds, rows at or before any t do not see later bars
    t, later2 = data.draw(changed_after(bars))
    pd.testing.assert_frame_equal(known_at(vr.transform(bars), t), known_at(vr.transform(later2), t), check_exact=True)


def test_volatility_regime_api():
    b = pd.concat(
        [sim_bars(s, 'crypto', '1h', '2024-01-01', '2024-03-01', outage_rate=0) for s in ('A', 'B')], ignore_index=True
    )
    vr = R.VolatilityRegime(quantiles=(0.2, 0.5, 0.8), estimator='yang_zhang')
    assert not hasattr(vr, 'thresholds_')  # __init__ learns nothing
    with pytest.raises(TypeError):
        vr.fit(b)  # the window is required
    out = vr.fit_transform(b, start='2024-01-05', end='2024-02-01')
    assert list(vr.thresholds_.columns) == ['q0.2', 'q0.5', 'q0.8'] and set(out.vol_regime.dropna()) == {0, 1, 2, 3}
    assert vr.fit_start_ == pd.Timestamp('2024-01-05', tz='UTC') and vr.n_fit_.sum() == 2 * (27 * 24)
    pooled = R.VolatilityRegime(pooled=True).fit(b, start='2024-01-05', end='2024-02-01')
    assert (
        pooled.thresholds_.index.tolist() == ['*']
        and pooled.transform(b.assign(instrument='C')).vol_regime.notna().any()
    )
    assert (
        R.VolatilityRegime()
        .fit(b[b.instrument == 'A'], start='2024-01-05', end='2024-02-01')
        .transform(b)
        .query("instrument == 'B'")
        .vol_regime.isna()
        .all()
    )  # unseen instrument: no class
    with pytest.raises(ValueError, match='quantiles'):
        R.VolatilityRegime(quantiles=(0.5, 0.2)).fit(b, start='2024-01-05', end='2024-02-01')
    with pytest.raises(ValueError, match='estimator'):
        R.VolatilityRegime(estimator='x').fit(b, start='2024-01-05', end='2024-02-01')


# ---------------------------------------------------------------- 3. agreement with ta

TA_TOL = 1e-9  # relative (and absolute, in units of the price level for MACD and ATR); observed ≤ 3e-13


def _ta_pairs(b):
    import ta

    c, h, l = b.close, b.high, b.low
    m, s, d = T.macd(c)
    pb, wb = T.bollinger(c)
    k, kd = T.stochastic(h, l, c)
    M_ = ta.trend.MACD(c)
    B_ = ta.volatility.BollingerBands(c)
    S_ = ta.momentum.StochasticOscillator(h, l, c)
    return {
        'rsi': (T.rsi(c), ta.momentum.RSIIndicator(c).rsi(), 1.0),
        'macd': (m, M_.macd(), c.median()),
        'macd_signal': (s, M_.macd_signal(), c.median()),
        'macd_diff': (d, M_.macd_diff(), c.median()),
        'bb_pband': (pb, B_.bollinger_pband(), 1.0),
        'bb_wband': (wb, B_.bollinger_wband(), 1.0),
        'atr': (T.atr(h, l, c), ta.volatility.AverageTrueRange(h, l, c).average_true_range(), c.median()),
        'stoch': (k, S_.stoch(), 1.0),
        'stoch_signal': (kd, S_.stoch_signal(), 1.0),
    }


def _agree(name, ours, theirs, scale):
    theirs = np.asarray(theirs, float).copy()
    if name == 'atr':
        theirs[:13] = np.nan  # ta fills ATR's warm-up (first n − 1 rows) with 0; we give NaN
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=f'{name}: NaN rows differ')
    np.testing.assert_allclose(ours, theirs, rtol=TA_TOL, atol=TA_TOL * scale, err_msg=name)


@pytest.mark.parametrize(
    'sym,cal,tf,end',
    [
        ('BTC-USD', 'crypto', '1h', '2024-04-01'),
        ('EUR-USD', 'fx', '15m', '2024-01-20'),
        ('SPY', 'equity_us', '5m', '2024-02-15'),
    ],
)
def test_shared_indicators_match_ta(sym, cal, tf, end):
    b = sim_bars(sym, cal, tf, '2024-01-01', end)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for name, (ours, theirs, scale) in _ta_pairs(b).items():
            _agree(name, ours, theirs, scale)


@hsettings(max_examples=30, deadline=None)
@given(d=st.integers(40, 300).flatmap(lambda n: ohlcv(n, min_move=1e-3)))
def test_shared_indicators_match_ta_on_generated_bars(d):
    "Well-conditioned generated bars (every close moves ≥ 0.1 %; on ulp-sized moves both sides are rounding noise)."
    b = pd.DataFrame(d)
    assume((b.high > b.low).all())  # ta gives ±inf for %K on a zero range, we give NaN
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for name, (ours, theirs, scale) in _ta_pairs(b).items():
            _agree(name, ours, theirs, scale)


def test_standard_set_columns_are_the_ta_values_per_instrument():
    "Through the set (several instruments in one frame): RSI and %K equal ta's; MACD and ATR are ta's divided by the close."
    import ta

    b = pd.concat([sim_bars(s, 'crypto', '1h', '2024-01-01', '2024-02-15') for s in ('A', 'B', 'C')], ignore_index=True)
    f = feature_set('standard').compute(b)
    for sym, g in b.groupby('instrument'):
        x = f[f.instrument == sym].reset_index(drop=True)
        g = g.reset_index(drop=True)
        np.testing.assert_allclose(x.rsi_14, ta.momentum.RSIIndicator(g.close).rsi(), rtol=TA_TOL)
        np.testing.assert_allclose(
            x.macd * g.close, ta.trend.MACD(g.close).macd(), rtol=TA_TOL, atol=TA_TOL * g.close.median()
        )
        np.testing.assert_allclose(
            x.stoch_d_14, ta.momentum.StochasticOscillator(g.high, g.low, g.close).stoch_signal(), rtol=TA_TOL
        )
        atr = ta.volatility.AverageTrueRange(g.high, g.low, g.close).average_true_range().to_numpy()
        np.testing.assert_allclose((x.natr_14 * g.close)[13:], atr[13:], rtol=TA_TOL)


# ---------------------------------------------------------------- 4. sets: ids, registry, pieces = whole


def test_basic_id_unchanged_and_standard_registered():
    assert make_feature_set(load_settings(env={})).id == feature_set('standard').id  # the embedded default
    fs = make_feature_set(load_settings(overrides={'features.set': 'basic'}, env={}))
    h = hashlib.sha256(
        json.dumps({'return_horizons': [1, 4, 24], 'vol_windows': [24, 96]}, sort_keys=True).encode()
    ).hexdigest()[:8]
    assert fs.id == f'basic@1-{h}'  # stores written before this change keep their dataset
    std = make_feature_set(
        load_settings(overrides={'features.set': 'standard', 'features.ma_windows': '10, 30'}, env={})
    )
    assert std.params == {**STANDARD_DEFAULTS, 'ma_windows': [10, 30]} and std.id != feature_set('standard').id
    assert 'ma_dist_30' in std.columns and std.lookback == feature_set('standard').lookback
    assert (describe_features(std).family != '?').all()
    with pytest.raises(ValueError, match=r'\[features\] set'):
        make_feature_set(load_settings(overrides={'features.set': 'nope'}, env={}))


@pytest.mark.parametrize('name', ['basic', 'standard'])
def test_pieces_equal_whole_with_lookback(name):
    fs = feature_set(name)
    b = pd.concat(
        [sim_bars(s, c, '1h', '2024-01-01', '2024-05-01') for s, c in (('A', 'crypto'), ('E', 'fx'))], ignore_index=True
    )
    whole = fs.compute(b)
    for sym in ('A', 'E'):
        bb = b[b.instrument == sym].reset_index(drop=True)
        for i in (fs.lookback + 5, len(bb) - 30):
            part = fs.compute(bb.iloc[i - fs.lookback :]).iloc[fs.lookback :].reset_index(drop=True)
            want = whole[whole.instrument == sym].iloc[i:].reset_index(drop=True)
            pd.testing.assert_frame_equal(part, want, rtol=1e-9)


# ---------------------------------------------------------------- 5. store: point in time, training sets, latest


def _store_with_history(tmp_path, keep=10):
    "Bars + features of two instruments written in three commits, with known (rewritten) commit times."
    st_ = FeatureStore(tmp_path / 'store', keep_snapshots=keep)
    fs = feature_set('basic', return_horizons=[1], vol_windows=[3])
    b = pd.concat(
        [sim_bars(s, 'crypto', '1h', '2024-01-01', '2024-01-04', outage_rate=0) for s in ('A', 'B')], ignore_index=True
    )
    cuts = [pd.Timestamp(x, tz='UTC') for x in ('2024-01-02', '2024-01-03', '2024-01-04')]
    lo = pd.Timestamp('2024-01-01', tz='UTC')
    for k, hi in enumerate(cuts):
        part = b[(b.timestamp >= lo) & (b.timestamp < hi)]
        with st_.transaction(f'r{k}') as tx:
            tx.write('bars', part, kind='bars', version='1')
            tx.write(
                f'features/{fs.id}',
                fs.compute(b[b.timestamp < hi]).pipe(lambda f: f[f.timestamp >= lo]),
                kind='features',
                version=fs.version,
                params=fs.params,
            )
        lo = hi
    commit = {1: '2024-01-02T00:30:00+00:00', 2: '2024-01-03T00:30:00+00:00', 3: '2024-01-04T00:30:00+00:00'}
    for f in (tmp_path / 'store' / 'snapshots').glob('*.json'):
        c = json.loads(f.read_text())
        c['committed_at'] = commit[c['version']]
        f.write_text(json.dumps(c))
    cat = json.loads(st_.catalog_path.read_text())
    cat['committed_at'] = commit[cat['version']]
    st_.catalog_path.write_text(json.dumps(cat))
    return st_, fs, b


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=st.integers(-120, 4 * 24 * 60 + 120), by_commit=st.booleans())
def test_as_of_returns_only_rows_known_then(tmp_path_factory, minutes, by_commit):
    st_, fs, b = _cached_store(tmp_path_factory)
    T_ = pd.Timestamp('2024-01-01', tz='UTC') + pd.Timedelta(minutes=minutes)
    got = st_.read(f'features/{fs.id}', as_of=T_, by_commit=by_commit)
    assert (bar_close(got) <= T_).all()
    committed = (
        pd.Timestamp('2024-01-01', tz='UTC')
        if not by_commit
        else max(
            [
                pd.Timestamp(x, tz='UTC')
                for x in ('2024-01-02', '2024-01-03', '2024-01-04')
                if pd.Timestamp(x, tz='UTC') + pd.Timedelta('30min') <= T_
            ],
            default=None,
        )
    )
    want = fs.compute(b)
    want = want[(bar_close(want) <= T_).to_numpy()]
    if by_commit:
        want = want.iloc[:0] if committed is None else want[want.timestamp < committed]
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True),
        want.sort_values(['instrument', 'timestamp']).reset_index(drop=True),
        check_dtype=False,
    )
    last = st_.latest(f'features/{fs.id}', as_of=T_, by_commit=by_commit)
    assert last.timestamp.tolist() == want.groupby('instrument').timestamp.max().tolist()


_CACHE = {}


def _cached_store(factory):
    if 'store' not in _CACHE:
        _CACHE['store'] = _store_with_history(factory.mktemp('pit'))
    return _CACHE['store']


def test_as_of_after_gc_is_refused_or_event_time_only(tmp_path):
    st_, fs, _ = _store_with_history(tmp_path, keep=1)
    with pytest.raises(StoreError, match='garbage-collected'):
        st_.read('bars', as_of='2024-01-02 12:00')
    assert bar_close(st_.read('bars', as_of='2024-01-02 12:00', by_commit=False)).max() == pd.Timestamp(
        '2024-01-02 12:00', tz='UTC'
    )
    assert len(st_.read('bars', as_of='2024-01-04 12:00')) == 2 * 72  # the current catalog answers for later times


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 30), minutes=st.integers(0, 4 * 24 * 60), start_h=st.integers(0, 80), span_h=st.integers(1, 80))
def test_training_set_has_no_future_rows_and_no_partial_labels(tmp_path_factory, h, minutes, start_h, span_h):
    st_, fs, b = _cached_store(tmp_path_factory)
    T_ = pd.Timestamp('2024-01-01', tz='UTC') + pd.Timedelta(minutes=minutes)
    s = pd.Timestamp('2024-01-01', tz='UTC') + pd.Timedelta(hours=start_h)
    e = s + pd.Timedelta(hours=span_h)
    tr = training_set(st_, f'features/{fs.id}', horizon=h, start=s, end=e, as_of=T_, by_commit=False)
    assert (bar_close(tr) <= T_).all() and (tr.label_end <= T_).all()  # features and labels known at as_of
    assert ((tr.timestamp >= s) & (tr.timestamp < e)).all()
    bb = b.sort_values(['instrument', 'timestamp']).reset_index(drop=True)
    for _, row in tr.iterrows():  # label = closes strictly after t, h bars on
        g = bb[bb.instrument == row.instrument].reset_index(drop=True)
        i = int(np.flatnonzero(g.timestamp == row.timestamp)[0])
        assert row.label == pytest.approx(np.log(g.close[i + h] / g.close[i]), rel=1e-12)
        assert row.label_end == g.timestamp[i + h] + pd.Timedelta('1h')
    # nothing known is missing: every feature row in [s, e) whose label closes by T is there
    want = bb.assign(end=bb.groupby('instrument').timestamp.shift(-h) + pd.Timedelta('1h'))
    want = want[(want.timestamp >= s) & (want.timestamp < e)]
    assert len(tr) == int((want.end <= T_).sum())


def test_forward_log_return_per_instrument():
    b = pd.DataFrame(
        {
            'timestamp': BASE + pd.to_timedelta([0, 1, 2, 0, 1], 'h'),
            'instrument': list('AAABB'),
            'timeframe': '1h',
            'close': [1.0, 2.0, 4.0, 10.0, 30.0],
        }
    )
    y = forward_log_return(b, 1)
    assert y.instrument.tolist() == ['A', 'A', 'B'] and np.allclose(y.label, np.log([2, 2, 3]))


# ---------------------------------------------------------------- 6. the ingest pipeline computes the configured set


def test_ingest_computes_the_standard_set_incrementally(tmp_path):
    from autotrader.pipelines.ingest import ingest

    def st_(d):
        return load_settings(
            overrides={'data.dir': str(tmp_path / d), 'features.set': 'standard', 'features.regime_window': '48'},
            env={},
        )

    ins = 'BTC-USD, EUR-USD:fx'
    a = ingest(source='sim', instruments=ins, start='2023-12-01', end='2024-01-29', settings=st_('inc'), progress=False)
    b = ingest(source='sim', instruments=ins, end='2024-02-03', settings=st_('inc'), progress=False)
    full = ingest(
        source='sim', instruments=ins, start='2023-12-01', end='2024-02-03', settings=st_('full'), progress=False
    )
    assert a.feature_set == b.feature_set == full.feature_set and full.feature_set.startswith('standard@1-')
    fs = make_feature_set(st_('full'))
    first = a.store.read('bars', 'EUR-USD')
    assert fs.lookback < len(first) - 24  # the 2nd run starts from `lookback` stored bars, not from the beginning
    got, want = b.store.read(f'features/{fs.id}'), full.store.read(f'features/{fs.id}')
    assert len(got) == len(want) > 0 and got.iloc[-1, 3:].drop(['spread', 'spread_24']).notna().all()
    pd.testing.assert_frame_equal(got, want, rtol=1e-9)
    cat = full.store.feature_sets()
    assert (
        cat.name.tolist() == ['standard'] and cat.params[0]['regime_window'] == 48 and 'vol_regime' in cat['columns'][0]
    )
