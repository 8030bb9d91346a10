"Drift metrics against a reference computation written here from the documented formulas (numpy / scipy)."

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from scipy.spatial.distance import jensenshannon
from autotrader.monitor.drift import numeric_drift, categorical_drift, drift_table, ks_pvalue


def ref_numeric(r, c, bins=10, binning='quantile', eps=1e-4):
    "PSI, JS, KS statistic and p-value of one feature, from the formulas in nbs/monitor/50_drift.ipynb."
    fr = r[np.isfinite(r)]
    k = np.arange(1, bins)
    if not len(fr):
        e = np.full(bins - 1, np.inf)
    elif binning == 'quantile':
        e = np.quantile(fr, k / bins)  # numpy's linear method
    else:
        e = fr.min() + (fr.max() - fr.min()) * k / bins
    mn, mx = (fr.min(), fr.max()) if len(fr) else (np.inf, np.inf)

    def props(x):  # (-inf, min), [min, e_1) … [e_B-1, max], (max, +inf), then -inf, +inf, NaN
        f = x[np.isfinite(x)]
        inside = f[(f >= mn) & (f <= mx)]
        cnt = np.bincount(np.searchsorted(e, inside, side='right'), minlength=bins)
        return np.concatenate(
            [[np.sum(f < mn)], cnt, [np.sum(f > mx)], [(x == -np.inf).sum(), (x == np.inf).sum(), np.isnan(x).sum()]]
        ) / len(x)

    p, q = props(r), props(c)
    pe, qe = np.maximum(p, eps), np.maximum(q, eps)
    psi = float(np.sum((qe - pe) * np.log(qe / pe)))
    js = float(jensenshannon(p, q, base=2) ** 2)
    rr, cc = r[~np.isnan(r)], c[~np.isnan(c)]
    if len(rr) and len(cc):
        k = ks_2samp(rr, cc, method='asymp')
        return psi, js, float(k.statistic), float(k.pvalue)
    return psi, js, np.nan, np.nan


def make_case(seed, n=3000, m=2000):
    rng = np.random.default_rng(seed)
    R = rng.normal(size=(n, 10))
    C = rng.normal(size=(m, 10))
    C[:, 1] += 0.8  # mean shift
    C[:, 2] *= 2.0  # scale shift
    R[:, 3] = 7.0
    C[:, 3] = 7.0  # constant, unchanged
    R[:, 4] = -1.0
    C[:, 4] = rng.choice([-1.0, 2.0], m)  # constant, then two values
    R[:, 5] = np.nan  # all-NaN reference
    C[:, 6] = np.nan  # all-NaN current
    R[rng.random(n) < 0.1, 7] = np.nan
    C[rng.random(m) < 0.3, 7] = np.nan  # missing values
    R[:5, 7] = np.inf
    C[:9, 7] = -np.inf  # infinities
    R[:, 8] = rng.integers(0, 4, n)
    C[:, 8] = rng.integers(2, 8, m)  # ties; current beyond the range: empty bins
    C[:, 9] = rng.standard_t(3, m)  # heavier tails
    return R, C


@pytest.mark.parametrize('binning', ['quantile', 'equal_width'])
@pytest.mark.parametrize('seed', range(4))
def test_numeric_matches_reference(seed, binning):
    R, C = make_case(seed)
    got = numeric_drift(R, C, bins=10, binning=binning, block=3)  # blocks smaller than the matrix
    for j in range(R.shape[1]):
        psi, js, ks, p = ref_numeric(R[:, j], C[:, j], 10, binning)
        assert got['psi'][j] == pytest.approx(psi, abs=1e-9), (j, 'psi')
        assert got['js'][j] == pytest.approx(js, abs=1e-9), (j, 'js')
        if np.isnan(ks):
            assert np.isnan(got['ks_stat'][j]) and np.isnan(got['ks_pvalue'][j])
        else:
            assert got['ks_stat'][j] == pytest.approx(ks, abs=1e-9), (j, 'ks')
            assert got['ks_pvalue'][j] == pytest.approx(p, abs=1e-6), (
                j,
                'p',
            )  # Pelz-Good beyond n_e = 2000: see the notebook
    assert got['psi'][0] < 0.05 and got['psi'][1] > 0.2 and got['psi'][3] == 0.0
    assert got['psi'][5] > 10 and got['psi'][6] > 10  # a feature that becomes (or stops being) all NaN drifts


def test_no_shift_is_small_and_blocks_agree():
    rng = np.random.default_rng(7)
    R, C = rng.normal(size=(5000, 40)), rng.normal(size=(4000, 40))
    a, b = numeric_drift(R, C, block=1), numeric_drift(R, C)
    for k in ('psi', 'js', 'ks_stat', 'ks_pvalue'):
        np.testing.assert_array_equal(a[k], b[k])
    assert a['psi'].max() < 0.05 and np.median(a['ks_pvalue']) > 0.1


@pytest.mark.parametrize('n1,n2', [(50, 80), (300, 1000), (1500, 2500), (5000, 20000)])
def test_ks_pvalue_matches_scipy_asymp(n1, n2):
    rng = np.random.default_rng(n1)
    for shift in (0.0, 0.05, 0.2):
        a, b = rng.normal(size=n1), rng.normal(size=n2) + shift
        k = ks_2samp(a, b, method='asymp')
        got = numeric_drift(a[:, None], b[:, None])
        assert got['ks_stat'][0] == pytest.approx(k.statistic, abs=1e-9)
        assert got['ks_pvalue'][0] == pytest.approx(k.pvalue, abs=1e-6)
    assert np.isnan(ks_pvalue(np.nan, 10, 10)[()])


def test_categorical_matches_reference():
    rng = np.random.default_rng(3)
    r = pd.Series(rng.choice(['a', 'b', 'c', 'd'], 2000, p=[0.4, 0.3, 0.2, 0.1]))
    c = pd.Series(rng.choice(['a', 'b', 'c', 'e'], 1000, p=[0.1, 0.3, 0.3, 0.3])).where(rng.random(1000) > 0.05)
    got = categorical_drift(r, c, max_categories=3)  # 'd' is pooled into <other>, 'e' is new
    labels, a, b = got['hist']
    assert labels == ['a', 'b', 'c', '<other>', '<new>', '<NaN>']
    p = np.array([(r == x).sum() for x in 'abc'] + [(r == 'd').sum(), 0, 0]) / len(r)
    q = np.array([(c == x).sum() for x in 'abc'] + [0, (c == 'e').sum(), c.isna().sum()]) / len(c)
    pe, qe = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    assert got['psi'] == pytest.approx(np.sum((qe - pe) * np.log(qe / pe)), abs=1e-9)
    assert got['js'] == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-9)
    assert np.isnan(got['ks_stat'])


def test_drift_table_mixed_frame_and_levels():
    rng = np.random.default_rng(5)
    ref = pd.DataFrame(
        {
            'instrument': 'A',
            'x': rng.normal(size=4000),
            'y': rng.normal(size=4000),
            'k': pd.Categorical(rng.choice(['u', 'v'], 4000)),
            'flag': rng.random(4000) > 0.5,
            'nan': np.nan,
            'i': pd.array(rng.integers(0, 5, 4000), dtype='Int64'),
        }
    )
    cur = pd.DataFrame(
        {
            'instrument': 'A',
            'x': rng.normal(size=500) + 1.0,
            'y': rng.normal(size=500),
            'k': pd.Categorical(rng.choice(['u', 'v'], 500, p=[0.95, 0.05])),
            'flag': rng.random(500) > 0.5,
            'nan': np.nan,
            'i': pd.array(rng.integers(0, 5, 500), dtype='Int64'),
        }
    )
    t = drift_table(ref, cur)
    assert set(t.index) == {'x', 'y', 'k', 'flag', 'nan', 'i'}
    assert (
        t.loc['k', 'kind'] == 'categorical'
        and t.loc['flag', 'kind'] == 'categorical'
        and t.loc['i', 'kind'] == 'numerical'
    )
    assert t.loc['x', 'level'] == 'critical' and t.loc['k', 'level'] == 'critical'
    assert (
        t.loc['y', 'level'] == 'ok' and t.loc['nan', 'psi'] == 0.0 and t.loc['nan', 'level'] == 'info'
    )  # no non-missing rows
    x = ref.x.to_numpy()
    psi, js, ks, p = ref_numeric(x, cur.x.to_numpy())
    assert t.loc['x', 'psi'] == pytest.approx(psi, abs=1e-9) and t.loc['x', 'ks_stat'] == pytest.approx(ks, abs=1e-9)


PSI_OUT = 2 * (1 - 1e-4) * np.log(1e4)  # all mass in a bin the other sample leaves empty: 18.4


@pytest.mark.parametrize('binning', ['quantile', 'equal_width'])
@pytest.mark.parametrize(
    'ref,cur',
    [
        (lambda rng: np.full(1000, 1.5), lambda rng: np.full(300, 2.5)),  # a point mass moves up
        (lambda rng: np.full(1000, 1.5), lambda rng: np.full(300, 0.5)),  # … or down
        (lambda rng: np.zeros(1000), lambda rng: rng.uniform(0, 1, 300)),  # a point mass spreads above itself
        (
            lambda rng: rng.uniform(0, 1, 1000),
            lambda rng: rng.uniform(1, 2, 300),
        ),  # a continuous reference, moved past its max
    ],
)
def test_mass_leaving_the_reference_range_is_seen(ref, cur, binning):
    """Explicit bins below the reference's minimum and above its maximum: any mass moved out of the reference's range
    is seen by PSI and JS, a point mass included (its quantile edges collapse)."""
    rng = np.random.default_rng(0)
    r, c = ref(rng), cur(rng)
    got = numeric_drift(r[:, None], c[:, None], binning=binning)
    assert got['js'][0] == pytest.approx(1.0, abs=1e-12)  # disjoint bins: the largest JS
    if np.ptp(r) == 0:
        assert got['psi'][0] == pytest.approx(PSI_OUT, rel=1e-9)
    else:
        assert got['psi'][0] > 10
    psi, js, _, _ = ref_numeric(r, c, binning=binning)
    assert got['psi'][0] == pytest.approx(psi, abs=1e-9) and got['js'][0] == pytest.approx(js, abs=1e-12)
    t = drift_table(pd.DataFrame({'x': r}), pd.DataFrame({'x': c}), min_chunks=3)  # 1000 / 300 rows: 3 reference chunks
    assert t.loc['x', 'level'] == 'critical'


def test_part_of_the_mass_leaving_the_range():
    "Half of the current sample above the reference's maximum: PSI and JS of that half, from the outer bin alone."
    r = np.full(1000, 1.5)
    c = np.r_[np.full(100, 1.5), np.full(100, 9.0)]
    got = numeric_drift(r[:, None], c[:, None])
    p = np.array([1.0, 0.0])
    q = np.array([0.5, 0.5])
    pe, qe = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    assert got['psi'][0] == pytest.approx(np.sum((qe - pe) * np.log(qe / pe)), abs=1e-12)
    assert got['js'][0] == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)
    assert numeric_drift(r[:, None], np.full((50, 1), 1.5))['psi'][0] == 0.0  # unchanged: nothing


def test_ordinary_data_unchanged_in_behaviour():
    """On continuous data the outer bins hold ~n_C/n_R of the current sample: no-shift PSI stays small, shifts are seen
    as before (the health-level false-alarm and detection rates are tests/test_monitor_alerts.py's)."""
    rng = np.random.default_rng(11)
    R, C = rng.normal(size=(5000, 40)), rng.normal(size=(1000, 40))
    got = numeric_drift(R, C)
    assert got['psi'].max() < 0.05 and got['js'].max() < 0.01
    S = numeric_drift(R, C + 0.7)
    assert (S['psi'] > 0.3).all()
