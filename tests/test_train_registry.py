"""The MLflow registry helpers against both backends: the embedded SQLite default and a real `mlflow server`
(subprocess on 127.0.0.1, SQLite backend store, proxied local artifacts, no auth): the session's `mlflow_server`."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autotrader.config import load_settings
from autotrader.train.gates import evaluate_gates
from autotrader.train.registry import ModelRegistry, metrics_from_frame

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    "One data folder (one SQLite registry) for the module: creating an MLflow database takes seconds."
    return tmp_path_factory.mktemp('data')


@pytest.fixture(params=['sqlite', 'server'])
def registry(request, data_dir, tmp_path, monkeypatch, mlflow_server_process):  # the server boots while sqlite runs
    "A ModelRegistry from settings: the default (SQLite under data.dir) or [mlflow] tracking_uri = the server."
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    ov = {'data.dir': str(data_dir), 'mlflow.model_name': f'm-{tmp_path.name}'}
    if request.param == 'server':
        uri, art = request.getfixturevalue('mlflow_server')
        ov['mlflow.tracking_uri'] = uri
    reg = ModelRegistry.from_settings(load_settings(overrides=ov, env={}))
    reg.kind = request.param
    reg.artifacts_dir = art if request.param == 'server' else data_dir / 'mlruns'
    return reg


@pytest.fixture(scope='module')
def model_and_data():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=['ret_1', 'ret_4', 'vol_24'])
    y = (X.ret_1 + 0.3 * rng.normal(size=300) > 0).astype(int)
    m = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=20)).fit(
        X, y
    )  # needs trusted skops types
    return m, X, y


def _metrics():
    return pd.DataFrame(
        {
            'sharpe': [2.6, 2.2],
            'deflated_sharpe': [0.99, 0.97],
            'max_drawdown': [0.05, 0.08],
            'win_rate': [0.57, 0.56],
            'profit_factor': [np.inf, 1.3],
        },
        index=pd.Index(['BTC-USD', 'portfolio'], name='instrument'),
    )


def test_full_cycle(registry, model_and_data, tmp_path):
    m, X, y = model_and_data
    reg = registry
    assert reg.champion() is None and reg.challenger() is None  # nothing registered yet
    ev = _metrics()
    gates = evaluate_gates(ev)
    run = reg.log_run(
        {'model': {'max_iter': 20}, 'horizon': 1},
        metrics_from_frame(ev),
        {'purpose': 'test'},
        run_name='t1',
        data_hash='d' * 64,
        feature_set='basic@1-abc',
        model=m,
        input_example=X,
        gates=gates,
        card_html='<html><body>card</body></html>',
        tables={'cv': pd.DataFrame({'fold': [0, 1]})},
        git_dir=ROOT,
    )
    c = reg.client
    r = c.get_run(run.run_id)
    assert r.data.params == {'model.max_iter': '20', 'horizon': '1'}
    assert r.data.metrics['test.sharpe'] == 2.2 and r.data.metrics['test.BTC-USD.sharpe'] == 2.6
    assert 'test.BTC-USD.profit_factor' not in r.data.metrics  # inf is not logged
    t = r.data.tags
    assert (
        t['autotrader.data_hash'] == 'd' * 64
        and t['autotrader.feature_set'] == 'basic@1-abc'
        and t['purpose'] == 'test'
    )
    if (ROOT / '.git').exists():
        assert len(t['autotrader.git_commit']) == 40
    assert t['autotrader.gates_passed'] == 'true'
    # artifacts: card, gates, tables — on the backend's artifact store, not in the working directory
    import mlflow

    with reg._active():
        card = mlflow.artifacts.load_text(f"runs:/{run.run_id}/model_card.html")
        g = mlflow.artifacts.load_dict(f"runs:/{run.run_id}/gates.json")
    assert (
        'card' in card and g['passed'] is True and len(g['gates']) == 4
    )  # deflated Sharpe, Sharpe, drawdown, win rate
    assert any(reg.artifacts_dir.rglob('model_card.html')) and any(reg.artifacts_dir.rglob('model.skops'))
    assert not (tmp_path / 'mlruns').exists() and not (tmp_path / 'mlflow.db').exists()

    # register → challenger; gate tags; the pyfunc predicts the pipeline's probabilities
    v1 = reg.register(run, description='first')
    ch = reg.challenger()
    assert ch['version'] == v1 and ch['run_id'] == run.run_id and reg.champion() is None
    tags = reg.set_gate_tags(v1, gates)
    assert tags['gates.passed'] == 'true' and tags['gate.sharpe'] == '2.2 > 2: pass'
    assert reg.challenger()['tags']['gate.win_rate'] == '0.56 > 0.55: pass'
    model = reg.load_model('challenger')
    np.testing.assert_allclose(np.asarray(model.predict(X.head(10))), m.predict_proba(X.head(10)), rtol=1e-12)
    with reg._active():  # the plain MLflow URI works too
        p = mlflow.pyfunc.load_model(f"models:/{reg.model_name}@challenger").predict(X.head(3))
    assert np.asarray(p).shape == (3, 2)
    with reg._active():
        info = mlflow.models.get_model_info(f"models:/{reg.model_name}@challenger")
    assert info.flavors['sklearn']['serialization_format'] == 'skops'
    assert [s.name for s in info.signature.inputs.inputs] == ['ret_1', 'ret_4', 'vol_24']

    # promote → champion; a second challenger leaves the champion alone until promoted
    assert reg.promote() is None and reg.champion()['version'] == v1
    run2 = reg.log_run({'horizon': 1}, {'test.sharpe': 2.5}, model=m, input_example=X)
    v2 = reg.register(run2)
    assert reg.challenger()['version'] == v2 and reg.champion()['version'] == v1
    assert reg.run_metrics(v1)['test.sharpe'] == 2.2
    assert reg.promote(v2) == v1
    champ = reg.champion()
    assert champ['version'] == v2 and champ['tags']['previous_champion'] == v1 and 'promoted_at' in champ['tags']
    assert 'demoted_at' in c.get_model_version(reg.model_name, v1).tags
    assert np.asarray(reg.load_model(v1).predict(X.head(2))).shape == (2, 2)  # by version number
    # a later card replaces the run's card
    reg.log_card(run.run_id, '<html>v2</html>')
    with reg._active():
        assert mlflow.artifacts.load_text(f"runs:/{run.run_id}/model_card.html") == '<html>v2</html>'


def test_refusals(registry, model_and_data, monkeypatch):
    m, X, _ = model_and_data
    monkeypatch.setenv('AUTOTRADER_OANDA_TOKEN', 'tok-98765-secret')
    run = registry.log_run({'note': 'called with tok-98765-secret'}, tags={'where': 'tok-98765-secret'})
    r = registry.client.get_run(run.run_id).data
    assert r.params['note'] == 'called with ***' and r.tags['where'] == '***'  # secret values are masked
    with pytest.raises(ValueError, match='look like secrets'):
        registry.log_run({'oanda_token': 'x'})
    with pytest.raises(ValueError, match='look like secrets'):
        registry.log_run(tags={'api_key': 'x'})
    with pytest.raises(ValueError, match='input_example'):
        registry.log_run(model=m)
    run = registry.log_run({'a': 1})
    with pytest.raises(ValueError, match='logged no model'):
        registry.register(run)
    with pytest.raises(ValueError, match='no challenger'):
        registry.promote()


def test_untrusted_types_are_refused(tmp_path):
    "skops only vouches for sklearn/numpy/scipy/autotrader types; anything else must be logged with cloudpickle."
    from sklearn.base import BaseEstimator, ClassifierMixin
    from autotrader.train.registry import _skops_trusted

    class Foreign(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.array([0, 1])
            return self

        def predict_proba(self, X):
            return np.full((len(X), 2), 0.5)

    Foreign.__module__ = 'somewhere_else'
    with pytest.raises(ValueError, match='cloudpickle'):
        _skops_trusted(Foreign().fit(None, None))
