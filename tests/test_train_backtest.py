"""Backtest metrics against independent reference formulas (written here) and quantstats; bars per year against the
simulator's calendars; gates and the model card.

Tolerances: metrics computed from the same returns must agree to 1e-9 relative (they differ only by float
rounding); the deflated Sharpe ratio must reproduce the published example to 1e-4 (the paper prints 4 decimals)."""

import json
import math
import re
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from autotrader.data.connectors import sim_bars
from autotrader.train.backtest import (
    backtest,
    bars_per_year,
    deflated_sharpe_ratio,
    evaluate,
    expected_max_sharpe,
    observed_bars_per_year,
    performance,
    portfolio,
)
from autotrader.train.card import card_plots, render_card
from autotrader.train.gates import evaluate_gates, gates_from_settings
from autotrader.train.labels import make_labels

RTOL = 1e-9


@pytest.fixture(scope='module')
def frame():
    "Two crypto instruments and an equity (bars at NY half hours): P(up) from a noisy oracle of the next return."
    rng = np.random.default_rng(5)
    parts = []
    for s, c in [('BTC-USD', 'crypto'), ('ETH-USD', 'crypto'), ('SPY', 'equity_us')]:
        lab = make_labels(sim_bars(s, c, '1h', '2024-01-01', '2024-04-01', seed=11), 1)
        parts.append(
            lab.assign(
                prob=np.clip(
                    0.5
                    + 0.3 * np.sign(lab.next_ret) * (rng.uniform(size=len(lab)) < 0.2)
                    + rng.normal(0, 0.1, len(lab)),
                    0,
                    1,
                )
            )
        )
    return pd.concat(parts, ignore_index=True)


# ---- independent reference implementations (deliberately written differently from the library) ----------------
def ref_positions(p, band=0.0):
    return [1.0 if x > 0.5 + band else (-1.0 if x < 0.5 - band else 0.0) for x in p]


def ref_backtest(df, cost_bps, band=0.0):
    rows = []
    for sym, g in df.groupby('instrument'):
        g = g.sort_values('timestamp')
        prev = 0.0
        for ts, p, r in zip(g.timestamp, g.prob, g.next_ret):
            w = ref_positions([p], band)[0]
            net = w * r - cost_bps * 1e-4 * abs(w - prev)
            rows.append((sym, ts, w, abs(w - prev), net))
            prev = w
    return pd.DataFrame(rows, columns=['instrument', 'timestamp', 'position', 'turnover', 'net'])


def ref_metrics(r: pd.Series, w: pd.Series, A: float) -> dict:
    r, w = pd.Series(np.asarray(r, float)), pd.Series(np.asarray(w, float))
    equity = pd.concat([pd.Series([1.0]), (1 + r).cumprod()], ignore_index=True)
    dd = (equity.cummax() - equity) / equity.cummax()
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / len(r))
    return dict(
        sharpe=r.mean() / r.std() * math.sqrt(A),
        sortino=r.mean() / downside * math.sqrt(A),
        max_drawdown=dd.max(),
        win_rate=(r > 0).sum() / (r != 0).sum(),
        profit_factor=r[r > 0].sum() / -r[r < 0].sum(),
        total_return=equity.iloc[-1] - 1,
        exposure=w.abs().mean(),
    )


def test_backtest_matches_reference(frame):
    bt = backtest(frame, cost_bps=3.0, band=0.02)
    ref = ref_backtest(frame, 3.0, band=0.02)
    for c in ('position', 'turnover', 'net'):
        np.testing.assert_allclose(bt[c].to_numpy(), ref[c].to_numpy(), rtol=RTOL, atol=1e-15)


def test_metrics_match_reference_per_instrument_and_portfolio(frame):
    bt = backtest(frame, cost_bps=3.0)
    A = {'BTC-USD': 8766.0, 'ETH-USD': 8766.0, 'SPY': 1764.0}
    ev = evaluate(bt, A)
    for sym, g in bt.groupby('instrument'):
        ref = ref_metrics(g.net, g.position, A[sym])
        for k, v in ref.items():
            assert ev.loc[sym, k] == pytest.approx(v, rel=RTOL), (sym, k)
    # portfolio: 1/N of every instrument's net return at each timestamp (absent instruments hold cash)
    wide = bt.pivot(index='timestamp', columns='instrument', values='net').fillna(0.0)
    pnet = wide.sum(axis=1) / 3
    pexp = bt.pivot(index='timestamp', columns='instrument', values='position').abs().fillna(0).sum(axis=1) / 3
    assert len(pnet) > bt[bt.instrument == 'BTC-USD'].shape[0]  # SPY's half hours add timestamps
    Ap = observed_bars_per_year(wide.index)
    assert ev.loc['portfolio', 'bars_per_year'] == pytest.approx(Ap, rel=RTOL)
    ref = ref_metrics(pnet, pexp, Ap)
    for k, v in ref.items():
        assert ev.loc['portfolio', k] == pytest.approx(v, rel=RTOL), ('portfolio', k)
    np.testing.assert_allclose(portfolio(bt).net.to_numpy(), pnet.to_numpy(), rtol=RTOL, atol=1e-15)


def test_metrics_match_quantstats(frame):
    """quantstats 0.0.x under pandas 3: its max drawdown starts from the first bar's equity (not 1), so a leading 0
    return is added. The win rate is quantstats' own convention (every bar with a non-zero net return counts)."""
    qs = pytest.importorskip('quantstats')
    bt = backtest(frame[frame.instrument == 'BTC-USD'], cost_bps=3.0)
    r = pd.Series(bt.net.to_numpy(), index=pd.DatetimeIndex(bt.timestamp))
    m = performance(bt.net, bt.position, bt.turnover, 8766.0)
    assert m['sharpe'] == pytest.approx(qs.stats.sharpe(r, periods=8766.0), rel=RTOL)
    assert m['sortino'] == pytest.approx(qs.stats.sortino(r, periods=8766.0), rel=RTOL)
    r0 = pd.concat([pd.Series([0.0], index=[r.index[0] - pd.Timedelta(hours=1)]), r])
    assert m['max_drawdown'] == pytest.approx(-qs.stats.max_drawdown(r0), rel=RTOL)
    assert m['win_rate'] == pytest.approx(qs.stats.win_rate(r), rel=RTOL)
    assert m['profit_factor'] == pytest.approx(qs.stats.profit_factor(r), rel=RTOL)
    assert m['total_return'] == pytest.approx(qs.stats.comp(r), rel=RTOL)


@pytest.mark.parametrize(
    'band,allow_short,cost', [(0.0, True, 3.0), (0.05, True, 3.0), (0.0, False, 3.0), (0.1, False, 10.0)]
)
def test_win_rate_counts_cost_paying_bars_like_quantstats(frame, band, allow_short, cost):
    """The win rate is quantstats' on the same net returns, with a band and long-only positions too (where flat bars
    that close a position pay the cost), for every instrument and the portfolio."""
    qs = pytest.importorskip('quantstats')
    bt = backtest(frame, cost_bps=cost, band=band, allow_short=allow_short)
    ev = evaluate(bt, 8766.0)
    closing = (bt.position == 0) & (bt.turnover > 0)
    assert closing.any() == (band > 0 or not allow_short)
    for sym, g in bt.groupby('instrument'):
        r = pd.Series(g.net.to_numpy(), index=pd.DatetimeIndex(g.timestamp))
        assert ev.loc[sym, 'win_rate'] == pytest.approx(qs.stats.win_rate(r, prepare_returns=False), rel=RTOL), sym
    pf = portfolio(bt)
    assert ev.loc['portfolio', 'win_rate'] == pytest.approx(qs.stats.win_rate(pf.net, prepare_returns=False), rel=RTOL)


def test_win_rate_issue_example_against_quantstats():
    "Positions [1, 1, 0, 1, 0] on next-bar returns [.01, .01, 0, .01, 0] at 10 bps: the two closing bars lose the cost."
    qs = pytest.importorskip('quantstats')
    f = pd.DataFrame(
        {
            'instrument': 'A',
            'timestamp': pd.date_range('2024-01-01', periods=5, freq='1h', tz='UTC'),
            'position': [1.0, 1, 0, 1, 0],
            'next_ret': [0.01, 0.01, 0, 0.01, 0],
        }
    )
    bt = backtest(f, position='position', cost_bps=10)
    np.testing.assert_allclose(bt.net, [0.009, 0.010, -0.001, 0.009, -0.001], atol=1e-15)
    m = performance(bt.net, bt.position, bt.turnover, 8766.0)
    r = pd.Series(bt.net.to_numpy(), index=pd.DatetimeIndex(bt.timestamp))
    assert m['win_rate'] == pytest.approx(0.6) and qs.stats.win_rate(r, prepare_returns=False) == pytest.approx(0.6)
    assert np.isnan(performance([0.0, 0.0], [0, 0], bars_per_year=1)['win_rate'])  # no bar won or lost: undefined


def test_deflated_sharpe_ratio():
    # Bailey & López de Prado (2014), numerical example: SR0 = 0.1132, DSR = 0.9004
    sr, A = 2.5 / math.sqrt(250), 250
    assert expected_max_sharpe(0.5 / A, 100) == pytest.approx(0.1132, abs=1e-4)
    assert deflated_sharpe_ratio(sr, 1250, -3, 10, 0.5 / A, 100) == pytest.approx(0.9004, abs=1e-4)
    # independent computation from returns: PSR with scipy's moments, and DSR falling with the number of trials
    r = np.random.default_rng(0).standard_t(5, 5000) * 0.01 + 0.0008
    m1 = performance(r, bars_per_year=252)
    srb = r.mean() / r.std(ddof=1)
    z = (
        srb
        * math.sqrt(len(r) - 1)
        / math.sqrt(1 - stats.skew(r) * srb + (stats.kurtosis(r, fisher=False) - 1) / 4 * srb**2)
    )
    assert m1['deflated_sharpe'] == pytest.approx(stats.norm.cdf(z), rel=1e-9)
    dsr = [
        performance(r, bars_per_year=252, n_trials=n, trial_sharpe_var=1.0)['deflated_sharpe']
        for n in (1, 10, 100, 1000)
    ]
    assert dsr == sorted(dsr, reverse=True) and dsr[-1] < dsr[0]


@pytest.mark.parametrize(
    'symbol,calendar,tol', [('BTC-USD', 'crypto', 0.02), ('EUR-USD', 'fx', 0.02), ('SPY', 'equity_us', 0.05)]
)
def test_bars_per_year_against_the_simulator(symbol, calendar, tol):
    "A year of sim bars (no outages) holds the calendar's bars per year (equities: 261 weekdays vs 252 sessions)."
    b = sim_bars(symbol, calendar, '1h', '2023-01-01', '2024-01-01', seed=1, outage_rate=0.0)
    assert len(b) == pytest.approx(bars_per_year('1h', calendar), rel=tol)


def test_gates_on_evaluate_frame_and_json(frame):
    from autotrader.config import load_settings

    ev = evaluate(backtest(frame, cost_bps=0.0), {'BTC-USD': 8766.0, 'ETH-USD': 8766.0, 'SPY': 1764.0})
    st = load_settings(overrides={'gates.scope': 'each_instrument', 'gates.min_deflated_sharpe': 0.5}, env={})
    d = gates_from_settings(ev, st, champion_metrics={'sharpe': ev.loc['portfolio', 'sharpe'] - 1})
    t = d.table
    assert set(t.subject) == {'portfolio', 'BTC-USD', 'ETH-USD', 'SPY'} and len(t) == 4 * 4 + 1
    row = t[t.gate == 'sharpe[SPY]'].iloc[0]
    assert (
        row.value == pytest.approx(ev.loc['SPY', 'sharpe']) and row.threshold == 2.0 and row.passed == (row.value > 2.0)
    )
    back = json.loads(d.to_json())
    assert back['passed'] == d.passed and len(back['gates']) == len(t) and back['gates'][-1]['gate'] == 'beats_champion'


def test_model_card_renders_everything(frame, tmp_path):
    bt = backtest(frame, cost_bps=2.0)
    ev = evaluate(bt, 8766.0)
    plots = card_plots(bt, {'ret_1': 0.2, 'vol_24': 0.1}, (frame.next_ret > 0).astype(int), frame.prob)
    html = render_card(
        dict(
            model=dict(name='autotrader', version='7', params={'C': 1}),
            intended_use='tests',
            data=dict(timeframe='1h', windows={'test': dict(start='a', end='b', rows=1, purged=0)}),
            feature_set=dict(id='basic@1-x', features=['ret_1']),
            cv=pd.DataFrame({'fold': [0], 'auc': [0.5]}),
            test_metrics=ev,
            gates=evaluate_gates(ev),
            plots=plots,
        )
    )
    (tmp_path / 'card.html').write_text(html)
    for s in (
        'Model details',
        'Intended use',
        'Windows',
        'Feature set',
        'Cross-validation',
        'Test window metrics',
        'Promotion gates',
        'Equity',
        'Drawdown',
        'Feature importance',
        'Calibration',
        'Limitations',
        'SPY',
    ):
        assert s in html, s
    assert html.count('src="data:image/png;base64,') == 4
    # the deflated Sharpe ratio first: stated under the verdict with its trials and SR_0, first row of the gate table
    dsr = ev.loc['portfolio', 'deflated_sharpe']
    i = html.index('Deflated Sharpe ratio <b>')
    assert i < html.index('<h2>Model details</h2>') and f'<b>{dsr:.4g}</b>' in html[i : i + 60]
    gate_rows = re.findall(r'<tr><td>([a-z_]+)</td><td>', html[html.index('<h2>Promotion gates</h2>') :])
    assert gate_rows == ['deflated_sharpe', 'sharpe', 'max_drawdown', 'win_rate']
    assert "non-zero net return that are positive (quantstats&#39; convention)" in html
