"Labels and purged splits on multi-instrument simulator data and on random label intervals (hypothesis)."

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from autotrader.data.connectors import sim_bars
from autotrader.train.labels import make_labels
from autotrader.train.splits import PurgedKFold, chrono_split, purged_cv_score, _np


@pytest.fixture(scope='module')
def bars():
    "Three instruments with outages (missing bars), two calendars: timestamps repeat across instruments."
    parts = [
        sim_bars(s, c, '1h', '2024-01-01', '2024-03-01', seed=3, outage_rate=0.2)
        for s, c in [('BTC-USD', 'crypto'), ('ETH-USD', 'crypto'), ('EUR-USD', 'fx')]
    ]
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize('h', [1, 4, 24])
def test_labels_are_complete_and_row_based(bars, h):
    lab = make_labels(bars, h)
    for sym, b in bars.groupby('instrument'):
        b = b.sort_values('timestamp').reset_index(drop=True)
        l = lab[lab.instrument == sym].reset_index(drop=True)
        assert len(l) == len(b) - h  # exactly the last h rows dropped
        np.testing.assert_array_equal(l.t1.to_numpy(), b.timestamp.iloc[h:].to_numpy())
        np.testing.assert_allclose(
            l.fwd_ret, np.log(b.close.iloc[h:].to_numpy() / b.close.iloc[:-h].to_numpy()), rtol=1e-9, atol=1e-14
        )
        np.testing.assert_allclose(
            l.next_ret, b.close.iloc[1 : len(b) - h + 1].to_numpy() / b.close.iloc[:-h].to_numpy() - 1, rtol=1e-9
        )
        assert (l.y == (l.fwd_ret > 0)).all() and l.notna().all().all()
    assert (lab.t1 > lab.timestamp).all()


def test_labels_never_partial():
    ts = pd.date_range('2024-01-01', periods=5, freq='1h', tz='UTC')
    b = pd.DataFrame({'instrument': 'X', 'timestamp': ts, 'close': [1.0, 2.0, np.nan, 4.0, 0.0]})
    lab = make_labels(b, 1)
    assert lab.timestamp.tolist() == [ts[0]]  # every label touching NaN / 0 is gone


def _check_folds(t0, t1, cv, n):
    "Property checks of purging, embargo, coverage and walk-forward order; returns the validation rows."
    tl = np.unique(t0)
    e = cv._embargo_bars(len(tl))
    seen = []
    for tr, va in cv.split(np.zeros(n)):
        assert len(np.intersect1d(tr, va)) == 0
        v0, v1 = t0[va].min(), t1[va].max()
        # no training label interval overlaps any validation label interval (pairwise) ...
        assert not ((t0[tr][:, None] <= t1[va][None, :]) & (t1[tr][:, None] >= t0[va][None, :])).any()
        # ... nor the validation interval as a whole (what purging guarantees)
        assert not ((t0[tr] <= v1) & (t1[tr] >= v0)).any()
        # embargo: nothing in training starts within e timestamps after the validation labels end
        p = np.searchsorted(tl, v1, side='right')
        emb = tl[p : p + e]
        assert not np.isin(t0[tr], emb).any()
        # validation = every row whose t0 is in the block (all instruments at those times)
        assert set(np.flatnonzero((t0 >= v0) & (t0 <= t0[va].max()))) == set(va)
        if cv.walk_forward:
            assert t0[tr].max() < v0
        seen.append(va)
    return np.concatenate(seen)


@pytest.mark.parametrize('walk_forward', [True, False])
@pytest.mark.parametrize('h', [1, 12])
def test_purged_kfold_on_multi_instrument_labels(bars, walk_forward, h):
    lab = make_labels(bars, h)
    t0, t1 = _np(lab.timestamp), _np(lab.t1)
    cv = PurgedKFold(5, t0=lab.timestamp, t1=lab.t1, embargo=0.02, walk_forward=walk_forward)
    seen = _check_folds(t0, t1, cv, len(lab))
    assert len(seen) == len(np.unique(seen))  # each row validated at most once
    tl = np.unique(t0)
    first_val = tl[np.array_split(np.arange(len(tl)), 6)[1][0]] if walk_forward else tl[0]
    assert set(seen) == set(np.flatnonzero(t0 >= first_val))  # folds cover the validation range
    f = cv.folds()
    assert (f.n_removed > 0).all() and f.n_valid.sum() == len(seen)


@hsettings(max_examples=60, deadline=None)
@given(
    n_times=st.integers(30, 200),
    n_inst=st.integers(1, 4),
    max_h=st.integers(1, 10),
    k=st.integers(2, 6),
    embargo=st.sampled_from([0, 0.01, 0.05, 3]),
    walk_forward=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_purging_properties_random_intervals(n_times, n_inst, max_h, k, embargo, walk_forward, seed):
    rng = np.random.default_rng(seed)
    t0 = np.concatenate(
        [
            np.sort(rng.choice(n_times, size=rng.integers(n_times // 2, n_times + 1), replace=False))
            for _ in range(n_inst)
        ]
    )
    t1 = t0 + rng.integers(0, max_h + 1, size=len(t0))  # label horizons vary by row
    cv = PurgedKFold(k, t0=t0, t1=t1, embargo=embargo, walk_forward=walk_forward)
    try:
        seen = _check_folds(t0, t1, cv, len(t0))
    except ValueError as e:  # too few timestamps: a clear refusal
        assert 'cannot make' in str(e) or 'no training rows' in str(e)
        return
    assert len(seen) == len(np.unique(seen))
    if not walk_forward:
        assert set(seen) == set(range(len(t0)))


def test_chrono_split_windows_do_not_leak(bars):
    lab = make_labels(bars, 6)
    w = chrono_split(lab.timestamp, lab.t1, valid_size=0.15, test_size=0.25)
    t0, t1 = _np(lab.timestamp), _np(lab.t1)
    assert t1[w.train].max() < t0[w.valid].min() and t1[w.valid].max() < t0[w.test].min()
    assert len(np.intersect1d(w.train, w.test)) == 0 and len(np.intersect1d(w.valid, w.test)) == 0
    # the test window takes every instrument's rows at its timestamps
    assert set(w.test) == set(np.flatnonzero(t0 >= t0[w.test].min()))
    d = w.to_dict()
    assert d['test']['start'] > d['valid']['end'] > d['train']['end'] and d['train']['purged'] > 0


def test_sklearn_compatibility(bars):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, cross_val_score

    lab = make_labels(bars, 2)
    X = pd.DataFrame({'x': np.r_[0, lab.fwd_ret.to_numpy()[:-1]]})
    X.index = pd.MultiIndex.from_arrays([lab.timestamp, lab.t1], names=['timestamp', 't1'])
    cv = PurgedKFold(4, embargo=0.01)  # t0/t1 from X's index
    assert len(cross_val_score(LogisticRegression(), X, lab.y, cv=cv)) == 4
    g = GridSearchCV(LogisticRegression(), {'C': [0.1, 1.0]}, cv=cv, scoring='neg_log_loss').fit(X, lab.y)
    assert g.best_params_['C'] in (0.1, 1.0)
    res = purged_cv_score(LogisticRegression(), X, lab.y, cv)
    assert res.oof.index.equals(X.index) and res.oof.notna().all(axis=1).sum() == res.folds.n_valid.sum()
    assert set(res.mean) == {'neg_log_loss', 'roc_auc', 'accuracy'}
