"""Prediction parity in the canary analysis: the probabilities the gateway served are recomputed offline (the registered
version loaded afresh, scored on the feature store's row of the same instrument and bar) and must match. An unchanged
champion re-registered as a new version passes; a version with hidden state — its served probabilities depend on the
calls it made before, so what the gateway served is not what its artifact computes on the same features (the
training/serving skew of an online-updated calibration or normaliser) — fails parity at the first analysis and is
rolled back with a reason naming parity. Runs on test_deploy's `World`: an in-process gateway on a manual clock."""

import json
import time
from pathlib import Path

import mlflow.pyfunc
import pytest

from test_deploy import INSTRUMENTS, World, _run


class HiddenState(mlflow.pyfunc.PythonModel):
    """A good classifier whose calibration drifts with its own use: each call shrinks the class probabilities towards
    uniform by `step` × the number of calls before it (at most `cap`). Its first call answers exactly as the wrapped
    model; a gateway that warmed it up, smoke-tested and replayed bars through it never serves that answer again."""

    def __init__(self, model, step=0.01, cap=0.5):
        self.model, self.step, self.cap = model, step, cap
        self.calls = 0

    def predict(self, context, model_input, params=None):
        p = self.model.predict_proba(model_input)
        f = min(self.step * self.calls, self.cap)
        self.calls += 1
        return (1 - f) * p + f / p.shape[1]


def register_hidden_state(registry, good_version: str) -> str:
    "Register `good_version`'s estimator wrapped in `HiddenState` (same training record and signature); returns the version."
    from mlflow.models import infer_signature

    mv = registry.client.get_model_version(registry.model_name, good_version)
    with registry._active() as mlflow:
        tr = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/training.json")
        pm = mlflow.pyfunc.load_model(f"models:/{registry.model_name}/{good_version}")
        sk, ex = pm._model_impl.sklearn_model, pm.input_example
        with mlflow.start_run(experiment_id=registry.experiment_id(), run_name='hidden-state'):
            info = mlflow.pyfunc.log_model(
                name='model',
                python_model=HiddenState(sk),
                code_paths=[str(Path(__file__))],
                signature=infer_signature(ex, sk.predict_proba(ex)),
                input_example=ex,
            )
            mlflow.log_dict(tr, 'training.json')
    return registry.register(info.model_uri, alias=None, tags={'test.mode': 'hidden-state'})


@pytest.fixture(scope='module')
def trained(champion, tmp_path_factory):
    "The session champion copied for this module, its twin (the same artifact as a new version) and a hidden-state copy."
    from autotrader.train.registry import ModelRegistry
    from champion import copy_champion

    c = copy_champion(champion, tmp_path_factory.mktemp('parity') / 'champion')
    reg = ModelRegistry.from_settings(c.settings)
    run = reg.client.get_model_version(reg.model_name, c.version).run_id
    twin = reg.register(f"runs:/{run}/model", alias=None, tags={'test.mode': 'twin'})
    return dict(dir=c.dir, good=c.version, twin=twin, hidden=register_hidden_state(reg, c.version))


@pytest.fixture
def world(trained, tmp_path, monkeypatch):
    w = World(trained, tmp_path, monkeypatch)
    yield w
    w.close()


def _parity(w, deployment_id):
    "The deployment's parity results, detail parsed."
    an = w.state.analyses(deployment_id)
    an = an[an.check == 'parity'].reset_index(drop=True)
    an['detail'] = an.detail.map(json.loads)
    return an


def test_unchanged_champion_canary_passes_parity(world, trained):
    "The champion's own artifact as a new version: every served probability is recomputed exactly; nothing served yet: inconclusive."
    from autotrader.deploy.controller import RolloutController

    t = time.perf_counter()
    w, said = world, []
    champ = w.reg.champion()['version']
    w.walk(60)
    w.t0 = w.clock.now()
    ctl = RolloutController('canary', w.st, state=w.state, registry=w.reg, clock=w.clock, log=said.append)
    ctl.start(trained['twin'])
    # the expected time to a P&L verdict: logged at the start and kept in the deployment
    eta = ctl.deployment()['detail']['verdict_eta']
    assert eta['bars'] >= w.st.deploy.min_signals and eta['hours'] > 0 and eta['instruments'] == 2, eta
    assert any(s.endswith(eta['line']) and 'P&L verdict expected after ~' in s for s in said), said
    while (d := ctl.step())['status'] != 'running':  # checks, load, stage 0 routed
        pass
    started = d['step_started_at']
    api = ctl.strategy.api(ctl)
    none = api.parity(trained['twin'], started, w.clock.now())
    assert none['verdict'] == 'inconclusive' and 'no served signals' in none['detail']['reason'], none
    # stage 0 up to and including its first analysis, with traffic every 10 minutes of clock time
    while not len(_parity(w, d['id'])):
        w.traffic()
        w.clock.advance(600)
        d = ctl.step()
    p = _parity(w, d['id']).iloc[0]
    detail = p['detail']
    assert p['verdict'] == 'pass' and p['value'] == 0.0, detail
    assert detail['n'] > 0 and detail['mismatches'] == 0 and detail['missing'] == 0, detail
    assert d['status'] == 'running' and d['stage'] == 0, d['status']
    ctl.abort('test done')
    assert w.reg.champion()['version'] == champ
    print(f"parity pass: {detail['n']} signals checked; {time.perf_counter() - t:.1f} s wall")


def test_served_probabilities_unlike_the_artifact_fail_parity_and_roll_back(world, trained):
    "A version with hidden state: rolled back at the first analysis of stage 0, with a reason naming parity."
    from autotrader.deploy.controller import RolloutController

    t = time.perf_counter()
    w = world
    champ = w.reg.champion()['version']
    w.walk(60)
    w.t0 = w.clock.now()
    ctl = RolloutController('canary', w.st, state=w.state, registry=w.reg, clock=w.clock, log=print)
    d = _run(lambda tick, poll: ctl.run(trained['hidden'], tick=tick, poll=poll), w)
    log = w.state.audit_log(d['id'])
    assert d['status'] == 'rolled_back' and d['stage'] == 0, log.tail(6)[['action', 'reason']].to_string()
    why = log[log.action == 'canary.rolling_back'].reason.iloc[0]
    assert 'parity: ' in why and 'from the offline prediction' in why, why
    p = _parity(w, d['id'])
    fail = p[p.verdict == 'fail'].iloc[0]
    assert fail['detail']['n'] > 0 and fail['value'] > w.st.canary.parity_max_mismatch_share, fail.to_dict()
    assert fail['detail']['examples'] and fail['detail']['missing'] == 0, fail['detail']
    # acted on at the first analysis that saw it, on the canary instruments only
    assert log.clock_at.iloc[-1] == fail['clock_at']
    canary = d['detail']['plan'][0]['instruments']
    assert all(v == champ for _, i, v, c in w.served if i not in canary and c == 200)
    assert w.reg.champion()['version'] == champ and set(w.state.routing().routes) == {'*'}
    assert set(INSTRUMENTS) >= set(canary)
    print(f"{why}; {time.perf_counter() - t:.1f} s wall")


def test_blue_green_of_served_probabilities_unlike_the_artifact_rolls_back_on_parity(world, trained):
    "Blue/green runs the parity check too: the hidden-state version is rolled back from every route, naming parity."
    from autotrader.deploy.bluegreen import BlueGreenDeployment

    w = world
    champ = w.reg.champion()['version']
    w.walk(150)
    w.t0 = w.clock.now()  # blue's baseline traffic
    bg = BlueGreenDeployment(settings=w.st, state=w.state, registry=w.reg, clock=w.clock)
    d = _run(lambda tick, poll: bg.ctl.run(trained['hidden'], tick=tick, poll=poll), w)
    log = w.state.audit_log(d['id'])
    assert d['status'] == 'rolled_back', log.tail(6)[['action', 'reason']].to_string()
    why = log[log.action == 'bluegreen.rolling_back'].reason.iloc[0]
    assert 'parity: ' in why and 'from the offline prediction' in why, why
    assert w.state.routing().version_of('BTC-USD') == champ and w.reg.champion()['version'] == champ


def test_blue_green_on_a_frozen_feed_rolls_back_on_the_signal_distribution(trained, tmp_path, monkeypatch):
    """Every instrument's features frozen from an hour before the deployment (a feed stuck upstream of the store):
    served and recomputed alike, so parity passes, but the served probabilities are unlike the version's own on its test
    window: the signal-distribution check rolls the blue/green back, naming it."""
    import pandas as pd
    from autotrader.deploy.bluegreen import BlueGreenDeployment
    from autotrader.features.store import FeatureStore

    w = World(trained, tmp_path, monkeypatch, canary_kv={'distribution_min_signals': 12})
    try:
        champ = w.reg.champion()['version']
        w.walk(150)
        w.t0 = w.clock.now()
        store = FeatureStore(w.st.store.dir, w.st.store.keep_snapshots)
        ds = w.gw.snap.models['blue'].dataset
        t = pd.Timestamp(w.clock.now(), unit='s', tz='UTC')
        rows = store.read(ds, start=t - pd.Timedelta(hours=1), end=t + pd.Timedelta(hours=24))
        feats = [c for c in rows.columns if c not in ('instrument', 'timestamp', 'timeframe') and not c.startswith('_')]
        rows[feats] = rows.groupby('instrument')[feats].transform('first')
        with store.transaction('test-frozen-feed') as tx:
            tx.write(ds, rows)
        w.gw.refresh_features()
        bg = BlueGreenDeployment(settings=w.st, state=w.state, registry=w.reg, clock=w.clock)
        d = _run(lambda tick, poll: bg.ctl.run(trained['twin'], tick=tick, poll=poll), w)
        log = w.state.audit_log(d['id'])
        assert d['status'] == 'rolled_back', log.tail(6)[['action', 'reason']].to_string()
        why = log[log.action == 'bluegreen.rolling_back'].reason.iloc[0]
        print(why)
        assert 'signal distribution: KS distance' in why and 'a frozen input?' in why and 'parity' not in why, why
        assert w.state.routing().version_of('BTC-USD') == champ
    finally:
        w.close()
