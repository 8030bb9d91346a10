"""Train → evaluate end to end: the pipelines through the `autotrader` command on embedded defaults, honest gates on
sim data (a random walk is never promoted, the demo edge is), reproducibility, a study resumed after a kill, the
champion comparison and rollout's `apply_decision` against a real `mlflow server`, and clear errors without data."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from autotrader.config import load_settings
from inprocess import autotrader_cli

ROOT = Path(__file__).resolve().parents[1]
END = '2025-01-01'  # fixed: the sim is deterministic for a given range
SMALL = {
    'instruments.symbols': 'BTC-USD, ETH-USD, SOL-USD',
    'data.lookback_days': 150,
    'data.end': END,
    'train.cv_folds': 3,
    'train.n_trials': 3,
}


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
    """One data folder per process for the library-level tests (one SQLite registry and optuna file: creating them takes
    seconds). Session-scoped, not module-scoped: the tests using it may run on different xdist workers."""
    return tmp_path_factory.mktemp('data')


def _settings(empty_settings, data_dir, name, **over):
    "Hermetic settings: `name` gets its own store, archive and registered model inside the shared data folder."
    ov = {
        'data.dir': str(data_dir),
        'store.dir': str(data_dir / f'store-{name}'),
        'archive.dir': str(data_dir / f'archive-{name}'),
        'mlflow.model_name': f'm-{name}',
        **SMALL,
        **over,
    }
    return load_settings(empty_settings, overrides={k: str(v) for k, v in ov.items()}, env={})


def _ingest(st):
    from autotrader.pipelines.ingest import ingest

    return ingest(settings=st, progress=False)


# ---------------------------------------------------------------- 1. the command on embedded defaults


def _cli(cwd, *args):
    "`autotrader run …` in `cwd` (in process: each pipeline notebook still runs in its own kernel)."
    return autotrader_cli('run', *args, '--no-progress', cwd=cwd)


def _record(cwd, pipeline):
    (run,) = sorted((cwd / 'reports' / pipeline).iterdir())
    return run, json.loads((run / 'run.json').read_text())


@pytest.mark.e2e
def test_cli_ingest_train_evaluate_on_defaults(tmp_path):
    "The README's command, then train and evaluate, in an empty folder with no settings.ini: every default in play."
    for args in (['ingest'], ['train', '-p', 'n_trials=3'], ['evaluate']):
        p = _cli(tmp_path, *args)
        assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    _, tr = _record(tmp_path, 'train')
    assert tr['status'] == 'ok' and tr['metrics']['version'] == '1' and tr['metrics']['instruments'] == 5
    assert tr['metrics']['n_trials'] == 4  # 3 tuning trials + the baseline
    run, ev = _record(tmp_path, 'evaluate')
    m = ev['metrics']
    assert m['version'] == '1' and isinstance(m['promote'], bool) and m['test_n_bars'] >= 500
    page = (run / 'report.html').read_text()
    assert (
        'Decision:' in page and 'Model card' in page and '&lt;h2&gt;Promotion gates&lt;/h2&gt;' in page
    )  # the card, in its iframe
    assert 'Created version' not in page and 'Creating initial MLflow' not in page  # MLflow's chatter stays out
    assert '<h2>Promotion gates</h2>' in (run / 'model_card.html').read_text()
    decision = json.loads((tmp_path / 'autotrader-data' / 'decisions' / 'autotrader' / '1.json').read_text())
    assert decision['promote'] == m['promote'] and [g['gate'] for g in decision['gates']['gates']] == [
        'deflated_sharpe',
        'sharpe',
        'max_drawdown',
        'win_rate',
    ]

    # the registry: alias challenger, gate tags, card artifact, and the pyfunc predicts on store rows
    import mlflow
    from autotrader.features.store import FeatureStore

    uri = f"sqlite:///{tmp_path / 'autotrader-data' / 'mlflow.db'}"
    c = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = c.get_model_version_by_alias('autotrader', 'challenger')
    assert str(mv.version) == '1' and mv.tags['decision.promote'] == str(m['promote']).lower()
    assert {'gate.sharpe', 'gate.max_drawdown', 'gate.win_rate', 'gates.passed'} <= set(mv.tags)
    assert mv.tags['autotrader.train.instruments'] == 'BTC-USD,ETH-USD,SOL-USD,EUR-USD,SPY'
    run_ = c.get_run(mv.run_id)
    assert {
        'autotrader.data_hash',
        'autotrader.feature_set',
        'autotrader.feature_set_hash',
        'autotrader.git_commit',
    } <= set(run_.data.tags)
    assert 'test.sharpe' in run_.data.metrics and 'tuning.n_trials' in run_.data.metrics
    arts = {a.path for a in c.list_artifacts(mv.run_id)}
    assert {'model_card.html', 'gates.json', 'decision.json', 'training.json'} <= arts
    prev = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        model = mlflow.pyfunc.load_model('models:/autotrader@challenger')
        store = FeatureStore(tmp_path / 'autotrader-data' / 'store')
        ds = next(d for d in store.datasets() if d.startswith('features/'))
        rows = store.read(ds).groupby('instrument').tail(10)  # store rows as they are, extra columns and all
        p = np.asarray(model.predict(rows))
        assert p.shape == (len(rows), 2) and np.allclose(p.sum(axis=1), 1) and ((p >= 0) & (p <= 1)).all()
    finally:
        mlflow.set_tracking_uri(prev[0])
        mlflow.set_registry_uri(prev[1])


# ---------------------------------------------------------------- 2. honest gates


@pytest.mark.parametrize(
    'alpha,seed,promoted',
    [(0.0, 1, False), (0.0, 2, False), (0.0, 3, False), (0.3, 1, True), (0.3, 2, True), (0.3, 3, True)],
)
def test_gates_are_honest(empty_settings, data_dir, alpha, seed, promoted):
    """A random walk (sim alpha = 0) is never promoted, whatever the seed; the documented demo edge (the default
    alpha, 0.3) is, with the default `standard` features (42 columns to overfit). 150 days of three crypto instruments, the
    first 61 the feature warm-up: a test window of about 570 hours."""
    from autotrader.config import SCHEMA
    from autotrader.pipelines.train import train
    from autotrader.pipelines.evaluate import evaluate_version

    if alpha:
        assert alpha == SCHEMA['sim']['alpha'].default  # the test holds for the documented value
    st = _settings(empty_settings, data_dir, f'honest-{alpha}-{seed}', **{'sim.alpha': alpha, 'sim.seed': seed})
    _ingest(st)
    res = train(st)
    ev = evaluate_version(st)
    p = ev.metrics.loc['portfolio']
    assert ev.promote is promoted, (ev.decision['reasons'], p[['sharpe', 'max_drawdown', 'win_rate']].to_dict())
    assert p.n_bars >= 500 and ev.decision['test_window']['rows'] == len(ev.test)
    if not promoted:
        assert 'win_rate' in ev.gates.failed  # a random walk cannot beat a coin after costs
    # the test window was never seen by tuning or fitting
    w = res.windows
    ts = res.data.frame.timestamp
    assert ts.iloc[np.r_[w.train, w.valid]].max() < ts.iloc[w.test].min()
    assert (res.data.frame.t1.iloc[np.r_[w.train, w.valid]] < ts.iloc[w.test].min()).all()


# ---------------------------------------------------------------- 3. reproducible, resumable


def test_same_seed_same_model(champion, tmp_path):
    """Same data, settings and seed in two fresh studies: the same trials, the same selected parameters, the same
    predictions. On the session champion's stored bars (only read: a fresh optuna storage each, nothing registered)."""
    from autotrader.config import load_settings
    from autotrader.pipelines.train import train

    fresh = lambda db: load_settings(
        champion.settings_path, overrides={'train.optuna_storage': f"sqlite:///{tmp_path / db}"}, env={}
    )
    a = train(fresh('a.db'), register=False)
    b = train(fresh('b.db'), register=False, as_of=a.data.as_of)
    assert (
        a.tuning.resumed == b.tuning.resumed == 0
        and a.tuning.trials['value'].tolist() == b.tuning.trials['value'].tolist()
    )
    assert (a.selected, a.params) == (b.selected, b.params)
    X = a.data.X.iloc[a.windows.test]
    np.testing.assert_array_equal(a.model.predict_proba(X), b.model.predict_proba(X))


_KILLED_TUNER = textwrap.dedent('''
    import sys, numpy as np, pandas as pd
    from autotrader.train.splits import PurgedKFold
    from autotrader.train.tuning import BacktestSpec, tune
    n = 3000; rng = np.random.default_rng(0); t = np.arange(n)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=list('abcd')); y = (X.a + rng.normal(size=n) > 0).astype(int)
    f = pd.DataFrame({'instrument': 'A', 'timestamp': pd.date_range('2024-01-01', periods=n, freq='1h', tz='UTC'),
                      'next_ret': rng.normal(0, 0.01, n)})
    tune(X, y, f, PurgedKFold(3, t0=t, t1=t + 1), BacktestSpec(), 'logistic', n_trials=int(sys.argv[2]), storage=sys.argv[1],
         study_name='killed', pruning=False)
''')


def test_killed_study_resumes(tmp_path):
    "A tuner killed mid-study (SIGKILL) leaves its finished trials in SQLite; the next run only runs the missing ones."
    import optuna

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = {
        **os.environ,
        'OMP_NUM_THREADS': '1',
        'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
    }
    proc = subprocess.Popen([sys.executable, '-c', _KILLED_TUNER, url, '1000'], env=env, start_new_session=True)
    deadline, done = time.monotonic() + 120, 0
    try:
        while done < 3:
            assert proc.poll() is None, 'the tuner ended before it was killed'
            assert time.monotonic() < deadline, 'no trials within 120 s'
            time.sleep(0.3)
            try:
                done = sum(
                    t.state.name == 'COMPLETE' for t in optuna.load_study(study_name='killed', storage=url).trials
                )
            except KeyError:
                done = 0  # the study is not created yet
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = optuna.load_study(study_name='killed', storage=url).trials
    finished = sum(t.state.name == 'COMPLETE' for t in before)
    assert finished >= 3
    subprocess.run([sys.executable, '-c', _KILLED_TUNER, url, str(finished + 2)], env=env, check=True, timeout=300)
    after = optuna.load_study(study_name='killed', storage=url).trials
    assert sum(t.state.name == 'COMPLETE' for t in after) == finished + 2  # resumed: only 2 more
    assert [t.params for t in after[:finished]] == [t.params for t in before[:finished]]


# ---------------------------------------------------------------- 4. a real MLflow server: champion and rollout


def test_champion_and_rollout_on_mlflow_server(champion_copy, mlflow_server):
    """Against `mlflow server`: train → evaluate → promote (rollout's `apply_decision`), then a second challenger is
    gated against that champion re-run on its own test rows; a refused decision does not move the champion. On a copy
    of the session champion's stored bars (its SQLite registry unused: every model here is on the server)."""
    from autotrader.train.core import PromotionRefused, apply_decision, read_decision
    from autotrader.pipelines.evaluate import evaluate_version
    from autotrader.pipelines.train import train
    from autotrader.train.registry import ModelRegistry

    st = load_settings(
        champion_copy.settings_path,
        env={},
        overrides={
            'mlflow.tracking_uri': mlflow_server.uri,
            'mlflow.model_name': 'm-server',
            'train.optuna_storage': f"sqlite:///{champion_copy.dir / 'server-optuna.db'}",
        },
    )  # a fresh study
    reg = ModelRegistry.from_settings(st)
    r1 = train(st)
    assert reg.challenger()['version'] == r1.version == '1' and reg.champion() is None
    e1 = evaluate_version(st)
    assert e1.promote and 'beats_champion' not in [g['gate'] for g in e1.gates.gates]
    assert reg.champion() is None  # evaluate never moves the champion
    assert apply_decision(st) is None and reg.champion()['version'] == '1'
    with reg._active() as mlflow:
        card = mlflow.artifacts.load_text(f"runs:/{r1.run_id}/model_card.html")
    assert '<h2>Promotion gates</h2>' in card

    r2 = train(st, seed=1, n_trials=2, baseline='none')
    e2 = evaluate_version(st)
    assert e2.champion['version'] == '1' and e2.champion_metrics is not None
    g = next(g for g in e2.decision['gates']['gates'] if g['gate'] == 'beats_champion')
    assert g['threshold'] == pytest.approx(e2.champion_metrics.loc['portfolio', 'sharpe'])
    assert g['passed'] == (e2.metrics.loc['portfolio', 'sharpe'] > e2.champion_metrics.loc['portfolio', 'sharpe'])
    assert read_decision(st)['version'] == r2.version == '2'
    tags = reg.challenger()['tags']
    assert tags['gate.beats_champion'].endswith('pass' if g['passed'] else 'fail')
    if not e2.promote:
        with pytest.raises(PromotionRefused, match='is not to be promoted'):
            apply_decision(st)
        assert reg.champion()['version'] == '1'
    else:
        assert apply_decision(st) == '1' and reg.champion()['version'] == '2'


# ---------------------------------------------------------------- 5. clear errors


def test_errors_say_what_to_do(empty_settings, data_dir, tmp_path):
    from autotrader.train.core import TrainError
    from autotrader.pipelines.evaluate import evaluate_version
    from autotrader.pipelines.train import train

    st = _settings(empty_settings, tmp_path, 'empty')
    with pytest.raises(TrainError, match='run `autotrader run ingest` first'):
        train(st)
    short = _settings(empty_settings, data_dir, 'short', **{'data.lookback_days': 20})
    _ingest(short)
    with pytest.raises(TrainError, match=r'min_test_timestamps = 500.*Ingest about \d+ more days'):
        train(short)
    with pytest.raises(TrainError, match='no challenger: run `autotrader run train` first'):
        evaluate_version(short)
    with pytest.raises(Exception, match=r'\[train\] model: unknown estimator'):
        train(short, model='svm')
