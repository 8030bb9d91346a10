"""Fast unit tests of labels, the backtest's edge cases, the rollout's sequential P&L test and the replay helpers:
error messages that name what is wrong, boundary values, and the verdicts of the sequential test."""

import http.server
import math
import threading
import time

import numpy as np
import pandas as pd
import pytest

from autotrader.clock import ReplayClock
from autotrader.config import load_settings
from autotrader.deploy.replay import ReplayTrader, _free_port, local_gateway
from autotrader.deploy.sequential import bars_to_verdict, cs_halfwidth, judge_pnl, paired_pnl, sequential_pnl
from autotrader.deploy.state import DeploymentState, StateError
from autotrader.features.store import FeatureStore
from autotrader.train.backtest import (
    backtest,
    backtest_from_settings,
    bars_per_year,
    deflated_sharpe_ratio,
    evaluate,
    expected_max_sharpe,
    instrument_bars_per_year,
    observed_bars_per_year,
    performance,
    positions,
)
from autotrader.train.labels import labels_from_settings, make_labels, prob_up


def _closes(closes, instrument='A', start='2024-01-01', freq='1h'):
    ts = pd.date_range(start, periods=len(closes), freq=freq, tz='UTC')
    return pd.DataFrame({'instrument': instrument, 'timestamp': ts, 'close': closes})


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize(
    'kw, message',
    [
        (dict(horizon=0), r'horizon must be a whole number of bars >= 1, got 0'),
        (dict(horizon=1.5), r'horizon must be a whole number of bars >= 1, got 1.5'),
        (dict(dead_zone=-0.1), r'dead_zone must be >= 0, got -0.1'),
        (dict(dead_zone=float('nan')), r'dead_zone must be >= 0, got nan'),
        (dict(dead_zone_mode='zero'), r"dead_zone_mode must be 'drop' or 'flat', got 'zero'"),
    ],
)
def test_make_labels_refuses_bad_parameters(kw, message):
    with pytest.raises(ValueError, match=message):
        make_labels(_closes([1.0, 2.0, 3.0]), **kw)


def test_make_labels_names_a_missing_column_and_duplicate_bars():
    with pytest.raises(ValueError, match=r"bars need a 'close' column"):
        make_labels(_closes([1.0, 2.0]).drop(columns='close'))
    b = _closes([1.0, 2.0])
    with pytest.raises(ValueError, match=r'duplicate \(instrument, timestamp\) rows'):
        make_labels(pd.concat([b, b]))


def test_dead_zone_drops_or_flattens_small_moves():
    b = _closes([100.0, 100.05, 110.0, 99.0, 99.0])  # +0.05 %, +9.5 %, -10 %, 0
    dropped = make_labels(b, dead_zone=0.001)
    assert dropped['y'].tolist() == [1, 0] and dropped['y'].dtype == 'int8'
    assert dropped['timestamp'].tolist() == b['timestamp'].iloc[[1, 2]].tolist()
    flat = make_labels(b, dead_zone=0.001, dead_zone_mode='flat')
    assert flat['y'].tolist() == [0, 1, -1, 0]
    assert flat['t1'].tolist() == b['timestamp'].iloc[1:].tolist()
    assert flat['next_ret'].iloc[1] == pytest.approx(110 / 100.05 - 1)


def test_labels_skip_non_positive_prices_and_keep_instruments_apart():
    a = _closes([1.0, 0.0, 2.0, 4.0], 'A')
    b = _closes([10.0, 5.0], 'B')
    out = make_labels(pd.concat([b, a]), horizon=1)
    # A: the bar before and the bar of the zero close have no log return; B's last bar has no next bar
    assert out[['instrument', 'y']].values.tolist() == [['A', 1], ['B', 0]]
    two = make_labels(_closes([1.0, 2.0, 4.0, -1.0]).assign(timeframe='1h'), horizon=2)
    assert list(two.columns) == ['instrument', 'timestamp', 'timeframe', 't1', 'fwd_ret', 'next_ret', 'y']
    assert two['fwd_ret'].tolist() == pytest.approx([math.log(4.0)])  # the second bar's horizon ends on a bad price


def test_labels_from_settings_use_the_train_section(empty_settings):
    st = load_settings(
        empty_settings,
        overrides={'train.horizon': '2', 'train.dead_zone': '0.05', 'train.dead_zone_mode': 'flat'},
        env={},
    )
    out = labels_from_settings(_closes([100.0, 101.0, 130.0, 90.0]), st)
    assert out['y'].tolist() == [1, -1]  # 100 → 130: up; 101 → 90: down (both beyond 5 %)


def test_prob_up_from_binary_and_three_class_probabilities():
    assert prob_up([[0.3, 0.7]], [0, 1]).tolist() == pytest.approx([0.7])
    # classes -1, 0, 1: 'down' is -1, 'flat' counts for neither side
    assert prob_up([[0.2, 0.5, 0.3], [0.6, 0.4, 0.0]], [-1, 0, 1]).tolist() == pytest.approx([0.55, 0.2])
    assert prob_up([[0.4]], [1]).tolist() == pytest.approx([0.7])  # no down class at all
    with pytest.raises(ValueError, match=r"no 'up' class 1 among \[0, 2\]"):
        prob_up([[0.5, 0.5]], [0, 2])
    with pytest.raises(ValueError, match=r'proba has shape \(3,\), classes \[0, 1\]'):
        prob_up([0.1, 0.2, 0.3], [0, 1])


# ---------------------------------------------------------------- backtest


def test_bars_per_year_of_every_kind_of_calendar():
    assert bars_per_year('1h') == pytest.approx(8766.0)
    assert bars_per_year('1d', 'fx') == pytest.approx(365.25 * 5 / 7)
    assert bars_per_year('1h', 'equity_us') == 252 * 7  # 6.5 h a session: 7 bars
    assert bars_per_year('1d', 'equity_us') == 252
    assert 250 <= bars_per_year('1d', 'XLON') <= 256
    with pytest.raises(ValueError, match=r"unknown timeframe '3h'"):
        bars_per_year('3h')
    with pytest.raises(ValueError, match=r"unknown calendar 'moon'"):
        bars_per_year('1h', 'moon')


def test_instrument_bars_per_year_follows_each_instruments_calendar(empty_settings):
    st = load_settings(
        empty_settings, overrides={'instruments.symbols': 'BTC-USD, EUR-USD:fx', 'data.timeframe': '1d'}, env={}
    )
    assert instrument_bars_per_year(st) == pytest.approx({'BTC-USD': 365.25, 'EUR-USD': 365.25 * 5 / 7})


def test_positions_threshold_sized_long_only_and_errors():
    p = [0.9, 0.55, 0.5, 0.2, np.nan]
    assert positions(p).tolist() == [1.0, 1.0, 0.0, -1.0, 0.0]
    assert positions(p, band=0.1).tolist() == [1.0, 0.0, 0.0, -1.0, 0.0]
    assert positions(p, mode='sized').tolist() == pytest.approx([0.8, 0.1, 0.0, -0.6, 0.0])
    assert positions(p, mode='sized', band=0.06).tolist() == pytest.approx([0.8, 0.0, 0.0, -0.6, 0.0])
    long_only = positions(p, allow_short=False)
    assert long_only.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0] and not np.signbit(long_only).any()
    with pytest.raises(ValueError, match=r"mode must be 'threshold' or 'sized', got 'kelly'"):
        positions(p, mode='kelly')
    with pytest.raises(ValueError, match=r'band must be >= 0, got -0.1'):
        positions(p, band=-0.1)


def _frame():
    ts = pd.date_range('2024-01-01', periods=3, freq='1h', tz='UTC')
    return pd.DataFrame(
        {
            'instrument': ['A'] * 3 + ['B'] * 3,
            'timestamp': list(ts) * 2,
            'prob': [0.9, 0.9, 0.1, 0.2, 0.5, 0.8],
            'next_ret': [0.01, -0.02, 0.03, 0.01, 0.0, -0.01],
        }
    )


def test_backtest_names_what_is_wrong_with_its_input():
    f = _frame()
    with pytest.raises(ValueError, match=r"backtest needs columns \['prob'\]"):
        backtest(f.drop(columns='prob'))
    with pytest.raises(ValueError, match=r'duplicate \(instrument, timestamp\) rows'):
        backtest(pd.concat([f, f.iloc[:1]]))
    with pytest.raises(ValueError, match=r"'next_ret' has missing values"):
        backtest(f.assign(next_ret=[0.01, None, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match=r'positions must lie in \[-1, 1\]'):
        backtest(f.assign(w=[0, 2, 0, 0, 0, 0]), position='w')
    with pytest.raises(ValueError, match=r"cost_bps has no cost for \['B'\]"):
        backtest(f, cost_bps={'A': 1.0})


def test_backtest_with_costs_per_instrument_and_given_positions():
    bt = backtest(_frame(), cost_bps={'A': 10.0, 'B': 0.0})
    a, b = bt[bt.instrument == 'A'], bt[bt.instrument == 'B']
    assert a['position'].tolist() == [1.0, 1.0, -1.0] and a['turnover'].tolist() == [1.0, 0.0, 2.0]
    assert a['cost'].tolist() == pytest.approx([0.001, 0.0, 0.002])
    assert a['net'].tolist() == pytest.approx([0.009, -0.02, -0.032])
    assert b['cost'].sum() == 0 and b['net'].tolist() == pytest.approx([-0.01, 0.0, -0.01])
    given = backtest(_frame().assign(w=[0.5, None, 0.5, 0, 0, 0]), position='w', cost_bps=0)
    assert 'prob' not in given and given['position'].tolist()[:3] == [0.5, 0.0, 0.5]  # a missing position is flat


def test_backtest_from_settings_uses_the_train_section(empty_settings):
    st = load_settings(
        empty_settings,
        overrides={'train.cost_bps': '0', 'train.allow_short': 'false', 'train.position_mode': 'sized'},
        env={},
    )
    bt = backtest_from_settings(_frame(), st)
    assert bt['position'].tolist() == pytest.approx([0.8, 0.8, 0.0, 0.0, 0.0, 0.6])
    assert bt['cost'].sum() == 0


def test_performance_of_no_bars_flat_returns_and_no_losses():
    empty = performance([])
    assert empty['n_bars'] == 0 and all(math.isnan(empty[k]) for k in ('sharpe', 'max_drawdown', 'n_trials'))
    flat = performance([0.01, 0.01, 0.01], position=[1, 1, 0])
    assert math.isnan(flat['sharpe']) and math.isnan(flat['deflated_sharpe']) and math.isnan(flat['sortino'])
    assert flat['profit_factor'] == math.inf and flat['win_rate'] == 1.0 and flat['n_active'] == 2
    assert flat['exposure'] == pytest.approx(2 / 3) and math.isnan(flat['turnover'])
    ruined = performance([-1.0, 0.5])
    assert ruined['cagr'] == -1.0 and ruined['max_drawdown'] == 1.0
    zero = performance([0.0, 0.0])
    assert math.isnan(zero['win_rate']) and math.isnan(zero['profit_factor'])


def test_deflated_sharpe_and_expected_max_sharpe_edge_cases():
    assert math.isnan(deflated_sharpe_ratio(0.1, 1))
    assert math.isnan(deflated_sharpe_ratio(float('inf'), 100))
    assert math.isnan(deflated_sharpe_ratio(5.0, 100, skew=1.0, kurt=1.0))  # 1 - skew·SR + (kurt - 1)/4·SR² <= 0
    assert expected_max_sharpe(1.0, 1) == 0.0 and expected_max_sharpe(0.0, 10) == 0.0
    assert expected_max_sharpe(1.0, 100) > expected_max_sharpe(1.0, 10) > 0
    assert deflated_sharpe_ratio(0.1, 1000, sr_var=0.01, n_trials=100) < deflated_sharpe_ratio(0.1, 1000)


def test_observed_bars_per_year_and_a_portfolio_of_mixed_calendars():
    assert math.isnan(observed_bars_per_year([pd.Timestamp('2024-01-01', tz='UTC')]))
    days = pd.date_range('2024-01-01', periods=365, freq='1D', tz='UTC')
    assert observed_bars_per_year(days) == pytest.approx(365.25)
    bt = backtest(_frame(), cost_bps=0)
    ev = evaluate(bt, bars_per_year={'A': 8766.0, 'B': 2000.0})
    assert list(ev.index) == ['A', 'B', 'portfolio']
    assert ev.loc['A', 'bars_per_year'] == 8766.0 and ev.loc['B', 'bars_per_year'] == 2000.0
    assert ev.loc['portfolio', 'bars_per_year'] == pytest.approx(observed_bars_per_year(bt['timestamp']))
    same = evaluate(bt, bars_per_year=1000.0)
    assert same.loc['portfolio', 'bars_per_year'] == 1000.0


# ---------------------------------------------------------------- the sequential P&L test


def test_confidence_sequence_narrows_with_more_bars():
    assert cs_halfwidth(0, 1.0) == math.inf
    w = [cs_halfwidth(n, 1.0) for n in (10, 100, 1000, 10000)]
    assert w == sorted(w, reverse=True) and w[-1] < 0.05
    assert cs_halfwidth(100, 1.0, alpha=0.01) > cs_halfwidth(100, 1.0, alpha=0.1)


def test_sequential_verdicts_fail_pass_and_inconclusive():
    rng = np.random.default_rng(0)
    worse = sequential_pnl(rng.normal(-0.01, 0.001, 200), delta=0.001)
    assert worse['verdict'] == 'fail' and worse['high'] < 0 and worse['n'] == 200
    same = sequential_pnl(rng.normal(0.0, 0.001, 2000), delta=0.001)
    assert same['verdict'] == 'pass' and same['low'] > -0.001
    few = sequential_pnl(rng.normal(-0.01, 0.001, 10), delta=0.001)  # clearly worse, but fewer than min_n bars
    assert few['verdict'] == 'inconclusive'
    noisy = sequential_pnl(rng.normal(0.0, 0.05, 50), delta=0.001)
    assert noisy['verdict'] == 'inconclusive' and noisy['low'] < -0.001 < 0 < noisy['high']


def test_sequential_pnl_ignores_missing_differences_and_says_inconclusive_without_any():
    none = sequential_pnl([np.nan, np.inf], delta=-0.01)
    assert none['verdict'] == 'inconclusive' and none['n'] == 0 and math.isnan(none['mean'])
    assert (none['low'], none['high']) == (-math.inf, math.inf)
    one = sequential_pnl([0.5, np.nan], delta=-0.01, min_n=1)
    assert one['n'] == 1 and one['sd'] == 0.0 and one['delta'] == 0.01  # the floor keeps the width finite
    assert math.isfinite(one['high'] - one['low'])


def test_judge_pnl_as_an_analysis_result():
    p = pd.DataFrame({'new': [0.01] * 40, 'base': [0.02] * 40})
    p['diff'] = p['new'] - p['base']
    r = judge_pnl(p, max_drop=0.2)
    assert r['check'] == 'pnl' and r['verdict'] == 'fail'
    assert r['threshold'] == pytest.approx(-0.004) and r['value'] == pytest.approx(-0.01)
    assert r['detail']['base_mean'] == pytest.approx(0.02) and r['detail']['new_mean'] == pytest.approx(0.01)
    empty = judge_pnl(pd.DataFrame(columns=['new', 'base', 'diff']))
    assert empty['verdict'] == 'inconclusive' and math.isnan(empty['detail']['base_mean'])
    assert empty['threshold'] == pytest.approx(-1e-9)
    zero = pd.DataFrame({'new': [0.0, 0.0, 0.0], 'base': [0.01, -0.01, 0.0], 'diff': [-0.01, 0.01, 0.0]})
    assert judge_pnl(zero, min_n=3)['threshold'] == pytest.approx(-1e-9)  # no known edge of the champion: no margin
    noisy = pd.DataFrame({'base': [0.03, -0.01] * 20, 'new': [0.03, -0.01] * 20, 'diff': 0.0})
    assert judge_pnl(noisy)['threshold'] == pytest.approx(-1e-9)  # mean 1 % but not known at 40 bars: no margin
    assert judge_pnl(noisy)['verdict'] == 'pass'  # an identical copy passes all the same


def test_bars_to_verdict():
    assert bars_to_verdict(0.0, 1.0) is None
    assert bars_to_verdict(float('nan'), 1.0) is None and bars_to_verdict(0.1, 0.0) is None
    assert bars_to_verdict(1e-6, 1.0, limit=1000) is None  # beyond the limit
    n = bars_to_verdict(-0.1, 1.0)
    assert cs_halfwidth(n, 1.0) < 0.1 <= cs_halfwidth(n - 1, 1.0)
    assert bars_to_verdict(0.2, 1.0) < n


def _bars_store(root, closes, instrument='A'):
    ts = pd.date_range('2024-01-01', periods=len(closes), freq='1h', tz='UTC')
    bars = pd.DataFrame(
        {'instrument': instrument, 'timestamp': ts, 'timeframe': '1h', 'close': closes, 'source': 'test'}
    )
    store = FeatureStore(root)
    with store.transaction('test') as tx:
        tx.write('bars', bars, kind='bars')
    return store, ts


def _signals(ts, version, signal, instrument='A'):
    return [
        dict(
            served_at=t.timestamp(),
            clock_at=t.timestamp() + 3600,
            instrument=instrument,
            timeframe='1h',
            bar=t.timestamp(),
            version=str(version),
            slot='blue',
            shadow=version == 1,
            prob=0.5,
            signal=signal,
            latency_ms=1.0,
            replica='r',
        )
        for t in ts
    ]


def test_paired_pnl_of_served_and_shadow_signals_on_the_same_bars(tmp_path):
    store, ts = _bars_store(tmp_path / 'store', [100.0, 101.0, 99.0, 102.0, 102.0])
    state = DeploymentState(f"sqlite:///{tmp_path / 'state.db'}")
    start, end, now = ts[0].timestamp(), ts[-1].timestamp() + 7200, ts[-1].timestamp() + 7200
    assert list(paired_pnl(state, store, 2, 1, start, end, now).columns) == [
        'instrument',
        'timestamp',
        'new',
        'base',
        'diff',
    ]
    assert paired_pnl(state, store, 2, 1, start, end, now).empty  # no signals logged yet
    state.log_served(_signals(ts[:4], 2, 1.0) + _signals(ts[:4], 1, -1.0) + _signals(ts[4:], 2, 1.0), [])
    p = paired_pnl(state, store, 2, 1, start, end, now, cost_bps=0)
    r = [101 / 100 - 1, 99 / 101 - 1, 102 / 99 - 1, 0.0]
    assert p['timestamp'].tolist() == list(ts[:4])  # the last bar has no shadow signal: not paired
    assert p['new'].tolist() == pytest.approx(r) and p['base'].tolist() == pytest.approx([-x for x in r])
    assert p['diff'].tolist() == pytest.approx([2 * x for x in r])
    costly = paired_pnl(state, store, 2, 1, start, end, now, cost_bps=10)
    assert costly['new'].iloc[0] == pytest.approx(r[0] - 0.001)  # the first bar opens the position
    early = paired_pnl(state, store, 2, 1, start, end, now=ts[0].timestamp())  # no bar has closed yet
    assert early.empty
    state.close()


# ---------------------------------------------------------------- replay helpers


class _Signals(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.paths.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{}')

    def log_message(self, *a):
        pass


def test_replay_trader_requests_every_instruments_signal_each_bar_and_counts_failures():
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Signals)
    srv.paths = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    up = f'http://127.0.0.1:{srv.server_address[1]}'
    down = f'http://127.0.0.1:{_free_port()}'  # nothing listens there: connection refused
    try:
        clock = ReplayClock(start=0.0, speed=90_000.0)  # a 900 s quarter bar every 10 ms of wall time
        with ReplayTrader([up, down], ['A', 'B', 'C'], clock, bar_seconds=3600, per_bar=4, max_seconds=5) as t:
            deadline = time.monotonic() + 5
            while t.ok < 6 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert not t.thread.is_alive()
        assert t.ok >= 6 and t.failed >= 6  # round robin over both URLs
        assert set(srv.paths) == {'/v1/signal/A', '/v1/signal/B', '/v1/signal/C'}
    finally:
        srv.shutdown()
        srv.server_close()


def test_replay_trader_stops_by_itself_after_max_seconds():
    clock = ReplayClock(start=0.0, speed=1.0)
    t = ReplayTrader([f'http://127.0.0.1:{_free_port()}'], ['A'], clock, max_seconds=0.2)
    t.thread.start()
    t.thread.join(3)
    assert not t.thread.is_alive() and t.failed == 1 and t.ok == 0  # one bar: one request, refused


def test_local_gateway_that_cannot_start_says_so_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv('AUTOTRADER_ADMIN_TOKEN', 'x' * 32)
    bad = tmp_path / 'settings.ini'
    bad.write_text('[no_such_section]\nkey = 1\n')
    with pytest.raises(StateError, match=r'the local gateway exited with code [1-9]\d* \(log: .*gateway\.log\)'):
        with local_gateway(bad, timeout=60, log_dir=tmp_path):
            pass
    assert (tmp_path / 'gateway.log').stat().st_size > 0


def test_local_gateway_that_does_not_answer_in_time_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv('AUTOTRADER_ADMIN_TOKEN', 'x' * 32)
    t0 = time.monotonic()
    with pytest.raises(StateError, match=r'the local gateway did not start within 0 s'):
        with local_gateway(timeout=0):
            pass
    assert time.monotonic() - t0 < 25
