"""The health pipeline end to end: `autotrader run ingest` then `autotrader run health` on embedded defaults; the
drift reference taken from the champion's training window in a real MLflow registry; model performance from logged
signals; the pipeline-metrics hook."""

import json
import logging
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from autotrader.config import load_settings
from autotrader.pipelines.health import run_health
from autotrader.monitor.health import tag_training_window, champion_reference, HealthError
from autotrader.monitor.performance import log_signals, read_signals
from autotrader.monitor.metrics import write_pipeline_metrics, read_samples
from autotrader.features.store import FeatureStore
from monitor_helpers import sim_store
from inprocess import autotrader_cli
from autotrader.features.basic import feature_set

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd):
    return autotrader_cli(*args, cwd=cwd, env={'MPLBACKEND': 'Agg'})


@pytest.mark.e2e
def test_cli_ingest_then_health_on_embedded_defaults(tmp_path):
    (tmp_path / 'settings.ini').write_text('[data]\nlookback_days = 12\n')
    r = cli('run', 'ingest', '--no-progress', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli('run', 'health', '--no-progress', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = next((tmp_path / 'reports' / 'health').iterdir())
    rec = json.loads((run_dir / 'run.json').read_text())
    assert (
        rec['status'] == 'ok'
        and rec['metrics']['features'] == len(feature_set('standard').columns)
        and rec['metrics']['rows_current'] > 100
    )
    html = (run_dir / 'report.html').read_text()
    assert 'Drift' in html and 'Data quality' in html and 'Alerts' in html and 'no champion' in html
    data = tmp_path / 'autotrader-data'
    assert (data / 'metrics' / 'autotrader_health.prom').exists() and (data / 'alerts' / 'alerts.jsonl').exists()
    # the runner hook: pipeline metrics from the run record
    st = load_settings(tmp_path / 'settings.ini', env={})
    ingest = json.loads(next((tmp_path / 'reports' / 'ingest').glob('*/run.json')).read_text())
    p = write_pipeline_metrics(ingest, st)
    s = read_samples(p)
    assert s[('autotrader_pipeline_status', (('pipeline', 'ingest'), ('status', 'ok')))] == 1.0
    assert s[('autotrader_pipeline_rows', (('kind', 'rows_clean'), ('pipeline', 'ingest')))] > 0


def test_empty_store_says_run_ingest(tmp_path):
    st = load_settings(overrides={'data.dir': str(tmp_path)}, env={})
    with pytest.raises(HealthError, match='autotrader run ingest'):
        run_health(st)


def test_champion_reference_signals_and_importance(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logging.getLogger('mlflow').setLevel(logging.ERROR)
    logging.getLogger('alembic').setLevel(logging.ERROR)
    from sklearn.linear_model import LogisticRegression
    from autotrader.train.registry import ModelRegistry

    st = load_settings(
        overrides={'data.dir': str(tmp_path / 'data'), 'instruments.symbols': 'BTC-USD, ETH-USD'}, env={}
    )
    fs, bars = sim_store(st.store.dir, days=70, seed=4, shift_from='2024-03-08')
    store = FeatureStore(st.store.dir)
    feats = store.read(f'features/{fs.id}')
    b = bars.sort_values(['instrument', 'timestamp'])
    up = (b.groupby('instrument').close.shift(-1) > b.close).astype(int)
    X = feats.merge(b[['instrument', 'timestamp']].assign(y=up.to_numpy()), on=['instrument', 'timestamp']).dropna()
    cols = fs.columns
    train = X[(X.timestamp >= '2024-01-10') & (X.timestamp < '2024-02-20')]
    model = LogisticRegression().fit(train[cols], train.y)
    reg = ModelRegistry.from_settings(st)
    run = reg.log_run(
        {'C': 1.0},
        {},
        feature_set=fs.id,
        model=model,
        input_example=train[cols].head(),
        tables={'importance': pd.Series(np.abs(model.coef_[0]), index=cols, name='importance').to_frame()},
    )  # as the train pipeline logs it
    v = reg.register(run)
    reg.promote(v)
    tag_training_window(reg, v, fs.id, '2024-01-10', '2024-02-20', ['BTC-USD', 'ETH-USD'], '1h')
    ch = champion_reference(st)
    assert (ch['version'], ch['feature_set'], ch['start']) == (v, fs.id, pd.Timestamp('2024-01-10', tz='UTC'))
    # signals logged by "the gateway": the champion's P(up) on every bar of the last 30 days
    live = X[X.timestamp >= '2024-02-10']
    sig = live[['instrument', 'timestamp']].assign(
        timeframe='1h', model_version=v, prob=model.predict_proba(live[cols])[:, 1], position=np.nan
    )
    assert log_signals(store, sig) and not log_signals(store, sig)  # logging the same rows again changes nothing
    assert len(read_signals(store)) == len(sig)
    r = run_health(st, now='2024-03-11')
    assert r.reference_source == f'champion v{v} training window'
    assert r.windows['reference'] == (pd.Timestamp('2024-01-10', tz='UTC'), pd.Timestamp('2024-02-20', tz='UTC'))
    assert r.reference.timestamp.min() >= pd.Timestamp(
        '2024-01-10', tz='UTC'
    ) and r.reference.timestamp.max() < pd.Timestamp('2024-02-20', tz='UTC')
    assert r.levels['drift'] == 'critical'
    assert (
        r.performance['signals'] > 1000
        and 0.3 < r.performance['hit_rate'] < 0.7
        and np.isfinite(r.performance['sharpe'])
    )
    assert len(r.rolling) > 100 and r.confidence is not None and set(r.confidence.index) == {'confidence', 'prob'}
    assert r.importance is not None and 0 <= r.importance['tv'] <= 1, r.importance
    assert set(r.importance['current'].index) == set(cols)
    s = read_samples(r.metrics_file)
    assert ('autotrader_model_hit_rate', ()) in s and ('autotrader_model_importance_shift', ()) in s


def test_daily_bars_default_windows_conclude_or_say_so(tmp_path):
    """Daily bars of an exchange calendar with the default windows: the current window is 168 trading days of each
    instrument, every check has its rows or is inconclusive (never `ok` without them), and the levels come with
    reasons (issue 20: 0-2 rows and 'overall: OK' before)."""
    from autotrader.data.connectors import sim_bars
    from autotrader.features.basic import make_feature_set

    st = load_settings(
        overrides={
            'data.dir': str(tmp_path / 'data'),
            'data.timeframe': '1d',
            'instruments.symbols': 'SPY:XNYS',
            'features.set': 'basic',
        },
        env={},
    )
    bars = sim_bars('SPY', 'XNYS', '1d', '2007-01-01', '2015-07-01', seed=3, regime_persistence=1.0, outage_rate=0.0)
    fs = make_feature_set(st)
    store = FeatureStore(st.store.dir)
    with store.transaction('test') as tx:
        tx.write('bars', bars, kind='bars', version='1')
        tx.write(f'features/{fs.id}', fs.compute(bars), kind='features', version=fs.version, params=fs.params)
    r = run_health(st, now='2015-06-06', send=False, write_metrics=False)
    assert len(r.current) == 168 and r.current.timestamp.nunique() == 168
    assert r.drift.chunks.min() >= st.drift.min_chunks and set(r.drift.level) <= {'ok', 'warning', 'critical'}
    assert r.level != 'inconclusive' and all(r.drift.reason.notna())
    early = run_health(st, now='2008-01-05', send=False, write_metrics=False)  # one year of data: too few chunks
    assert early.levels['drift'] == 'inconclusive' and early.level != 'ok'  # never ok while a check cannot conclude
    assert 'drift inconclusive' in early.headline() and 'min_chunks' in ' '.join(early.notes)
