"""False promotion on a random walk, the cheap version: `benchmarks/false_promotion.py` runs the whole pipeline (ingest →
train → evaluate) over many seeds; this test runs the same backtest, metrics and gates on a model trained in one
step (a logistic regression on the `basic` features), for many sim seeds with `alpha = 0`, where no model can have an
edge. No tuning here, so the deflated Sharpe ratio is deflated for one trial only: the probabilistic Sharpe ratio
against 0, the least strict form of the gate. Under the null its rate is at most its nominal 5 % (less after costs)."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom
from sklearn.linear_model import LogisticRegression

from autotrader.config import SCHEMA
from autotrader.data.connectors import sim_bars
from autotrader.features.basic import feature_set
from autotrader.train.backtest import backtest, evaluate
from autotrader.train.gates import evaluate_gates
from autotrader.train.labels import make_labels

FS = feature_set('basic')
SEEDS = range(100, 160)  # 60 synthetic markets
DAYS = 100  # 2 instruments × 100 days of 1h bars: a test window of ~470 hours


def gate_verdicts(seed, alpha):
    "Train on the first 80 % of the timestamps, backtest the rest after costs; every gate's verdict (default thresholds)."
    parts = []
    for s in ('BTC-USD', 'ETH-USD'):
        b = sim_bars(
            s,
            'crypto',
            '1h',
            '2024-01-01',
            pd.Timestamp('2024-01-01') + pd.Timedelta(days=DAYS),
            seed=seed,
            alpha=alpha,
        )
        parts.append(make_labels(b, 1).merge(FS.compute(b), on=['instrument', 'timestamp', 'timeframe']))
    f = pd.concat(parts, ignore_index=True).dropna(subset=FS.columns)
    ts = np.sort(f.timestamp.unique())
    cut = ts[int(len(ts) * 0.8)]
    tr, te = f[f.t1 < cut], f[f.timestamp >= cut]  # no training label reaches into the test window
    m = LogisticRegression(max_iter=300).fit(tr[FS.columns], tr.y)
    ev = evaluate(backtest(te.assign(prob=m.predict_proba(te[FS.columns])[:, 1]), cost_bps=2.0), 8766.0)
    d = evaluate_gates(ev)  # the library's defaults: DSR > 0.95 first
    return {**{g['gate']: g['passed'] for g in d.gates}, 'all gates': d.passed}


@pytest.fixture(scope='module')
def random_walk():
    return pd.DataFrame([gate_verdicts(s, 0.0) for s in SEEDS])


def test_gates_on_a_random_walk(random_walk):
    v = random_walk
    assert list(v.columns) == ['deflated_sharpe', 'sharpe', 'max_drawdown', 'win_rate', 'all gates']
    n, k = len(v), v.sum().astype(int).to_dict()
    print(
        '\nfalse promotions over',
        n,
        'random-walk seeds:',
        ', '.join(f'{g} alone {c}/{n}' if g != 'all gates' else f'all {c}/{n}' for g, c in k.items()),
    )
    nominal = 1 - SCHEMA['gates']['min_deflated_sharpe'].default
    assert nominal == pytest.approx(0.05)
    # the DSR gate alone: not significantly above its nominal rate (one-sided binomial test at the 1 % level)
    assert binom.sf(k['deflated_sharpe'] - 1, n, nominal) > 0.01, k
    # a Sharpe threshold of 2 on ~470 hourly bars is a coin toss away from luck: it passes far more random walks
    assert k['sharpe'] > 3 * max(k['deflated_sharpe'], 1), k
    assert k['all gates'] == 0, k


def test_the_gates_can_pass(random_walk):
    "The same code on the demo edge (alpha 0.3) mostly clears the DSR gate: the zero above is not a gate that never passes."
    v = pd.DataFrame([gate_verdicts(s, 0.3) for s in SEEDS[:4]])
    assert v['deflated_sharpe'].sum() >= 3 and v['sharpe'].sum() >= 3, v
