"""Serving and blue/green deployment against real parts on 127.0.0.1: two `autotrader serve` replicas sharing a real
PostgreSQL (Debian's postgresql, a throwaway cluster on a free port), models in the MLflow registry, a replay clock over
stored sim bars, and an aiohttp load generator at >= 200 requests/s. Also the embedded default (SQLite state, one
replica serving the champion), malformed requests, admin auth, and rollback to a retained version."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import urllib.error
from pathlib import Path

import pandas as pd
import pytest

from local_servers import free_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = 'test-admin-token-0123456789'
INSTRUMENTS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ADA-USD']


# ---------------------------------------------------------------- PostgreSQL, a throwaway cluster


def _pg_bin():
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope='module')
def postgres():
    "A PostgreSQL cluster on a free loopback port (run as the `postgres` user when we are root: initdb refuses root)."
    b = _pg_bin()
    if b is None:
        pytest.skip('PostgreSQL is not installed (apt-get install postgresql; .ci/run does)')
    d = Path(tempfile.mkdtemp(prefix='autotrader-pg-'))
    port = free_port()
    as_pg = []
    if os.geteuid() == 0:
        shutil.chown(d, 'postgres')
        os.chmod(d, 0o755)
        as_pg = ['runuser', '-u', 'postgres', '--']
    run = lambda *a: subprocess.run(
        as_pg + [str(b / a[0]), *a[1:]], check=True, capture_output=True, text=True, timeout=120
    )
    run('initdb', '-D', f'{d}/data', '-A', 'trust', '-U', 'autotrader')
    run(
        'pg_ctl',
        '-D',
        f'{d}/data',
        '-o',
        f'-p {port} -k {d} -c listen_addresses=127.0.0.1',
        '-l',
        f'{d}/log',
        '-w',
        'start',
    )
    try:
        run('createdb', '-h', '127.0.0.1', '-p', str(port), '-U', 'autotrader', 'deploy')
        yield f'postgresql+psycopg://autotrader@127.0.0.1:{port}/deploy'
    finally:
        subprocess.run(
            as_pg + [str(b / 'pg_ctl'), '-D', f'{d}/data', '-m', 'immediate', 'stop'], capture_output=True, timeout=60
        )
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- a trained champion and misbehaving versions


@pytest.fixture(scope='module')
def trained(champion, tmp_path_factory):
    """The session's trained and promoted v1 (tests/champion.py: sim bars of 4 crypto instruments, alpha 0.6), copied
    for this module, with its twin v2 and v3 raises / v4 slow (600 ms a call) / v5 inverted registered beside it."""
    from autotrader.train.registry import ModelRegistry
    from bad_models import register_misbehaving
    from champion import copy_champion

    c = copy_champion(champion, tmp_path_factory.mktemp('deploy') / 'champion')
    reg = ModelRegistry.from_settings(c.settings)
    run = reg.client.get_model_version(reg.model_name, c.version).run_id
    twin = reg.register(f"runs:/{run}/model", alias=None, tags={'test.mode': 'twin'})
    bad = {m: register_misbehaving(reg, c.version, m, delay=0.6) for m in ('raises', 'slow', 'inverted')}
    return dict(dir=c.dir, good=c.version, twin=twin, **bad)


def _write_settings(d: Path, state_url: str, canary_kv: dict | None = None, **deploy) -> Path:
    base = (d / 'settings.ini').read_text()
    kv = {
        **dict(
            state_url=state_url,
            routing_poll_seconds=0.5,
            heartbeat_seconds=0.5,
            flush_seconds=0.25,
            watch_minutes=480,
            baseline_minutes=120,
            analysis_seconds=1800,
            min_requests=20,
            min_signals=80,
            on_inconclusive='hold',
            max_hold_minutes=4320,
            latency_floor_ms=400,
            warmup_requests=5,
        ),
        **deploy,
    }
    canary = dict(
        stages='canary=0.05:120, low=0.25:60, medium=0.5:60, full=1.0:60',
        max_p99_ms=400,
        integration_bars=12,
        smoke_latency_ms=400,
    )  # a busy CI machine (a good version's p99 reached 269 ms); the slow versions take 600 ms a call
    canary.update(canary_kv or {})
    p = d / f"settings-{abs(hash(state_url)) % 10**6}.ini"
    p.write_text(
        base
        + '[deploy]\n'
        + ''.join(f'{k} = {v}\n' for k, v in kv.items())
        + '[canary]\n'
        + ''.join(f'{k} = {v}\n' for k, v in canary.items())
    )
    return p


class Gateway:
    "`autotrader serve` as a subprocess on a free port; stopped (with its children) at exit."

    def __init__(self, settings: Path, cwd: Path, *args, env=None):
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        env = {
            **os.environ,
            'AUTOTRADER_ADMIN_TOKEN': TOKEN,
            'MLFLOW_DISABLE_TELEMETRY': 'true',
            'NO_PROXY': '127.0.0.1,localhost',
            'PYTHONPATH': os.pathsep.join([str(ROOT / 'tests'), os.environ.get('PYTHONPATH', '')]),
            **(env or {}),
        }
        self.log = open(cwd / f'gateway-{self.port}.log', 'wb')
        self.proc = subprocess.Popen(
            [
                sys.executable,
                '-m',
                'autotrader.cli',
                'serve',
                '--port',
                str(self.port),
                '--settings',
                str(settings),
                *args,
            ],
            cwd=cwd,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"gateway exited: {Path(self.log.name).read_text()[-3000:]}")
            try:
                if get(self.url + '/readyz')[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"gateway not ready: {get(self.url + '/readyz')} {Path(self.log.name).read_text()[-3000:]}")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


def get(url, method='GET', data=None, headers=None):
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# ---------------------------------------------------------------- the embedded default


def test_embedded_default_serves_the_champion(trained):
    "SQLite state in the data folder, no routing yet: the gateway routes every instrument to the champion (audited)."
    from autotrader.config import load_settings
    from autotrader.deploy.state import DeploymentState

    p = _write_settings(trained['dir'], '')
    gw = Gateway(p, trained['dir'])
    try:
        gw.wait_ready()
        code, body = get(f'{gw.url}/v1/signal/BTC-USD')
        j = json.loads(body)
        assert code == 200 and j['version'] == trained['good'] and j['slot'] == 'blue', j
        assert set(j) >= {'instrument', 'signal', 'probability', 'version', 'slot', 'as_of', 'served_at'}
        assert j['signal'] in (-1.0, 0.0, 1.0) and 0 <= j['probability'] <= 1
        state = DeploymentState.from_settings(load_settings(p, env={}))
        assert state.url.startswith('sqlite:') and 'bootstrap' in set(state.audit_log().action)
        time.sleep(1.0)
        log = state.signal_log()
        assert len(log) >= 1 and log.iloc[-1].instrument == 'BTC-USD' and log.iloc[-1].version == trained['good']
        from autotrader.features.store import FeatureStore
        from autotrader.monitor.performance import read_signals

        store = FeatureStore(load_settings(p, env={}).store.dir)
        assert state.export_signals(store) >= 1 and len(read_signals(store)) >= 1  # what the health pipeline reads
    finally:
        gw.stop()


def test_replicas_on_one_port_answer_metrics_for_all_workers(trained, tmp_path):
    """`autotrader serve --replicas 2`: two worker processes share the port, each a replica in the state; every /metrics
    scrape, whichever worker answers it, counts the requests of both; the shared metrics folder is removed at exit."""
    from concurrent.futures import ThreadPoolExecutor
    from prometheus_client.parser import text_string_to_metric_families
    from autotrader.config import load_settings
    from autotrader.deploy.state import DeploymentState

    p = _write_settings(trained['dir'], '')
    state = DeploymentState.from_settings(load_settings(p, env={}))
    tmpd = tmp_path / 'tmp'
    tmpd.mkdir()
    gw = Gateway(p, trained['dir'], '--replicas', '2', env={'TMPDIR': str(tmpd)})
    try:
        gw.wait_ready()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            reps = state.replicas(max_age=3)
            reps = reps[reps.replica.str.endswith(f'-{gw.port}') & reps.ready.astype(bool)]
            if len(reps) == 2:
                break
            time.sleep(0.3)
        assert len(reps) == 2, state.replicas(max_age=3)
        assert len(list(tmpd.glob('autotrader-gateway-metrics-*'))) == 1
        n, t0 = 400, time.time() - 1
        with ThreadPoolExecutor(8) as ex:
            codes = list(ex.map(lambda _: get(f'{gw.url}/v1/signal/ETH-USD')[0], range(n)))
        assert codes == [200] * n
        time.sleep(1.5)  # flushed to the state
        with state.engine.connect() as c:
            per = pd.read_sql(
                f"SELECT replica, SUM(requests) AS n FROM request_stats WHERE replica LIKE '%-{gw.port}' "
                f"AND instrument = 'ETH-USD' AND wall >= {t0} GROUP BY replica",
                c,
            )
        assert len(per) == 2 and per.n.sum() == n and (per.n > 0).all(), per  # both workers served
        for _ in range(8):  # whichever worker answers the scrape
            fams = {f.name: f for f in text_string_to_metric_families(get(f'{gw.url}/metrics')[1])}
            served = sum(
                x.value
                for x in fams['autotrader_gateway_requests'].samples
                if x.name.endswith('_total')
                and x.labels.get('instrument') == 'ETH-USD'
                and x.labels.get('code') == '200'
            )
            assert served == n, served
            assert [x.value for x in fams['autotrader_gateway_ready'].samples] == [1.0]
    finally:
        gw.stop()
    assert not list(tmpd.glob('autotrader-gateway-metrics-*'))


# ---------------------------------------------------------------- two replicas on PostgreSQL


@pytest.fixture(scope='module')
def cluster(trained, postgres):
    "Two gateway replicas sharing the PostgreSQL state, on a replay clock over the stored bars at 7200x."
    from autotrader.config import load_settings
    from autotrader.deploy.state import DeploymentState, ReplayClock
    from autotrader.deploy.gateway import bootstrap_routing
    from autotrader.train.registry import ModelRegistry

    p = _write_settings(trained['dir'], postgres)
    st = load_settings(p, env={})
    state = DeploymentState.from_settings(st)
    # 7200x: a wall minute walks 5 days of bars; the module walks several weeks, all of them stored bars (before 2025-01-01)
    state.set_clock(
        ReplayClock(start=pd.Timestamp('2024-10-01T00:00Z').timestamp(), speed=7200.0), reason='test replay'
    )
    bootstrap_routing(state, ModelRegistry.from_settings(st))
    gws = [Gateway(p, trained['dir']) for _ in range(2)]
    try:
        for g in gws:
            g.wait_ready()
        yield dict(settings=p, st=st, state=state, gateways=gws, urls=[g.url for g in gws])
    finally:
        for g in gws:
            g.stop()


def test_read_endpoints_and_metrics(cluster, trained):
    for url in cluster['urls']:
        assert get(url + '/healthz')[0] == 200
        code, body = get(url + '/readyz')
        assert code == 200 and json.loads(body)['ready'] is True
        assert get(url + '/v1/routing')[0] == 401  # routing detail is for operators
        r = json.loads(get(url + '/v1/routing', headers={'Authorization': f'Bearer {TOKEN}'})[1])
        assert r['served']['*']['version'] == trained['good'] and r['state']['routes']['*']['slot'] == 'blue'
        assert get(f'{url}/v1/signal/ETH-USD')[0] == 200
        m = get(url + '/metrics')[1]
        for name in (
            'autotrader_gateway_requests_total',
            'autotrader_gateway_request_duration_seconds_bucket',
            'autotrader_gateway_ready 1.0',
            'autotrader_gateway_routing_generation',
            'autotrader_gateway_model_loaded',
        ):
            assert name in m, name
        assert 'version="%s"' % trained['good'] in m and 'instrument="ETH-USD"' in m and 'slot="blue"' in m
    # the names the Grafana deployments dashboard and the alert rules use exist
    used = set()
    for f in [ROOT / 'ops/grafana/autotrader-deployments.json', ROOT / 'ops/prometheus/autotrader-rules.yml']:
        import re

        used |= set(re.findall(r'autotrader_gateway_[a-z_]+', f.read_text()))
    exported = {n.replace('_bucket', '') for n in re.findall(r'autotrader_gateway_[a-z_]+', m)}
    assert used and {u.removesuffix('_bucket') for u in used} <= exported, used - exported


def test_bad_requests_get_clear_4xx_and_admin_needs_the_token(cluster):
    url = cluster['urls'][0]
    feats = json.loads(get(f'{url}/v1/signal/BTC-USD')[1])
    h = {'Content-Type': 'application/json'}
    # a valid body first: the features of the routed version
    from autotrader.deploy.gateway import load_version
    from autotrader.train.registry import ModelRegistry

    hdl = load_version(ModelRegistry.from_settings(cluster['st']), feats['version'])
    good = {f: 0.01 for f in hdl.features}
    code, body = get(f'{url}/v1/predict', 'POST', json.dumps({'features': good, 'instrument': 'BTC-USD'}).encode(), h)
    assert code == 200 and 0 <= json.loads(body)['probability'] <= 1, body
    code, body = get(f'{url}/v1/predict', 'POST', json.dumps({'rows': [good, good]}).encode(), h)
    assert code == 200 and len(json.loads(body)['predictions']) == 2, body
    f0 = hdl.features[0]
    bad = [
        ('GET', '/v1/signal/NOPE-USD', None, 404, 'unknown instrument'),
        ('GET', '/v1/signal/', None, 404, ''),
        ('POST', '/v1/predict', b'{not json', 400, 'malformed JSON'),
        ('POST', '/v1/predict', b'', 422, 'must be a JSON object'),
        ('POST', '/v1/predict', b'[1, 2]', 422, 'must be a JSON object'),
        ('POST', '/v1/predict', b'"text"', 422, 'must be a JSON object'),
        ('POST', '/v1/predict', b'{}', 422, 'exactly one of'),
        ('POST', '/v1/predict', json.dumps({'features': good, 'rows': [good]}).encode(), 422, 'exactly one of'),
        ('POST', '/v1/predict', json.dumps({'feature': good}).encode(), 422, "unknown key(s) in the body: feature"),
        ('POST', '/v1/predict', json.dumps({'features': {}}).encode(), 422, 'missing feature(s)'),
        (
            'POST',
            '/v1/predict',
            json.dumps({'features': {k: v for k, v in good.items() if k != f0}}).encode(),
            422,
            f'missing feature(s): {f0}',
        ),
        (
            'POST',
            '/v1/predict',
            json.dumps({'features': {**good, 'bogus': 1}}).encode(),
            422,
            'unexpected feature(s): bogus',
        ),
        (
            'POST',
            '/v1/predict',
            json.dumps({'features': {**good, f0: 'high'}}).encode(),
            422,
            f"feature '{f0}' must be a number",
        ),
        (
            'POST',
            '/v1/predict',
            json.dumps({'features': {**good, f0: True}}).encode(),
            422,
            f"feature '{f0}' must be a number",
        ),
        (
            'POST',
            '/v1/predict',
            json.dumps({'features': {**good, f0: [1]}}).encode(),
            422,
            f"feature '{f0}' must be a number",
        ),
        (
            'POST',
            '/v1/predict',
            json.dumps({'features': {**good, f0: {'a': 1}}}).encode(),
            422,
            f"feature '{f0}' must be a number",
        ),
        ('POST', '/v1/predict', json.dumps({'features': 5}).encode(), 422, 'must be a JSON object'),
        ('POST', '/v1/predict', json.dumps({'rows': []}).encode(), 422, "'rows' is empty"),
        ('POST', '/v1/predict', json.dumps({'rows': {}}).encode(), 422, "'rows' must be a list"),
        ('POST', '/v1/predict', json.dumps({'rows': [good, 'x']}).encode(), 422, 'row 1:'),
        ('POST', '/v1/predict', json.dumps({'rows': [good] * 1001}).encode(), 422, 'too many rows'),
        (
            'POST',
            '/v1/predict',
            json.dumps({'features': good, 'instrument': 7}).encode(),
            422,
            "'instrument' must be a string",
        ),
        (
            'POST',
            '/v1/predict',
            json.dumps({'features': good, 'instrument': 'NOPE'}).encode(),
            404,
            'unknown instrument',
        ),
        ('GET', '/v1/predict', None, 405, ''),
        ('GET', '/v1/nothing', None, 404, ''),
    ]
    for method, path, data, want, msg in bad:
        code, body = get(url + path, method, data, h if data is not None else None)
        assert code == want and msg in body, (method, path, code, body[:300])
        assert 400 <= code < 500
    assert len(bad) >= 20
    # admin: 401 without or with a wrong token; works with it
    for hdr in ({}, {'Authorization': 'Bearer wrong'}, {'Authorization': TOKEN}):
        assert get(f'{url}/v1/admin/reload', 'POST', b'', hdr)[0] == 401
        assert get(f'{url}/v1/slots/blue/signal/BTC-USD', 'GET', None, hdr)[0] == 401
    assert get(f'{url}/v1/admin/reload', 'POST', b'', {'Authorization': f'Bearer {TOKEN}'})[0] == 200
    assert get(f'{url}/v1/slots/blue/signal/BTC-USD', 'GET', None, {'Authorization': f'Bearer {TOKEN}'})[0] == 200
    # still serving, both replicas
    for u in cluster['urls']:
        assert get(f'{u}/v1/signal/BTC-USD')[0] == 200


def _routes_by_generation(state) -> dict:
    "Routing generation → {instrument or '*': version served} (from the audit log's routing summaries)."
    out = {}
    for s in state.audit_log().to_state.dropna():
        try:
            j = json.loads(s)
        except ValueError:
            continue
        if isinstance(j, dict) and 'generation' in j and 'routes' in j:
            out[j['generation']] = {i: r.split('=v')[1].split()[0] for i, r in j['routes'].items()}
    return out


def _versions_by_generation(state) -> dict:
    "Routing generation → version routed for '*'."
    return {g: r['*'] for g, r in _routes_by_generation(state).items() if '*' in r}


def _wrong_versions(state, records) -> list:
    "Responses whose version is not the one their routing generation routed for their instrument."
    gen = _routes_by_generation(state)
    routed = lambda r: (gen.get(r['generation']) or {}).get(r['instrument'], (gen.get(r['generation']) or {}).get('*'))
    # a failing routed version is answered by its fallback, and the response says so (fallback_from)
    return [r for r in records if routed(r) != (r['fallback'] or r['version'])]


def test_blue_green_switch_under_load_has_zero_downtime(cluster, trained):
    "The specification's API as written; a good green (v1's twin) takes the traffic and becomes champion."
    from loadgen import Load
    from autotrader.deploy.bluegreen import BlueGreenDeployment
    from autotrader.train.registry import ModelRegistry

    state, st = cluster['state'], cluster['st']
    with Load(cluster['urls'], INSTRUMENTS, rate=250) as load:
        time.sleep(2.5)  # baseline traffic for blue
        bg = BlueGreenDeployment(environment='production', settings=st)
        endpoint = bg.deploy_green(model_version=trained['twin'])
        assert bg.wait_for_ready(endpoint, timeout=120)
        bg.switch_traffic(from_env='blue', to_env='green')
        switched = time.time()
        bg.archive_blue(retention_hours=24)
        final = bg.monitor().watch()
        time.sleep(1.0)
    s = load.summary()
    print('load', s)
    assert final['status'] == 'succeeded', state.audit_log(final['id']).tail(5).to_string()
    assert s['failed'] == 0, [r for r in load.records if r['status'] != 200][:5]
    assert s['rate'] >= 200, s
    # every response's version is the one its routing generation routed
    gen = _versions_by_generation(state)
    wrong = [r for r in load.records if gen.get(r['generation']) != r['version']]
    assert not wrong, wrong[:5]
    # both replicas served green within the configured delay after the switch
    for url in cluster['urls']:
        first = min(r['received'] for r in load.records if r['url'] == url and r['version'] == trained['twin'])
        print(url, 'serves green', round(first - switched, 3), 's after the switch')
        assert first - switched <= st.deploy.routing_poll_seconds + 2.0
    reg = ModelRegistry.from_settings(st)
    assert (
        reg.champion()['version'] == trained['twin'] and reg.version('previous-champion')['version'] == trained['good']
    )
    r = state.routing()
    assert r.slots['blue']['version'] == trained['twin'] and r.slots['previous']['version'] == trained['good']
    actions = list(state.audit_log(final['id']).action)
    for a in (
        'bluegreen.create',
        'bluegreen.load',
        'bluegreen.checking',
        'bluegreen.ready',
        'bluegreen.route',
        'bluegreen.stage',
        'bluegreen.analysis',
        'bluegreen.promoting',
        'bluegreen.relabel',
        'bluegreen.succeeded',
    ):
        assert a in actions, (a, actions)
    res = state.analyses(final['id'])
    assert {'error_rate', 'p99_latency_ms', 'sharpe', 'pnl'} <= set(res.check) and res[res.check == 'pnl'].verdict.iloc[
        -1
    ] == 'pass'


@pytest.mark.parametrize(
    'mode, reason', [('raises', 'error_rate'), ('slow', 'p99_latency_ms'), ('inverted', 'P&L worse')]
)
def test_bad_green_is_rolled_back_automatically(cluster, trained, mode, reason):
    from loadgen import Load
    from autotrader.deploy.bluegreen import BlueGreenDeployment
    from autotrader.train.registry import ModelRegistry

    state, st = cluster['state'], cluster['st']
    reg = ModelRegistry.from_settings(st)
    champ = reg.champion()['version']
    with Load(cluster['urls'], INSTRUMENTS, rate=200) as load:
        time.sleep(2.5)
        final = BlueGreenDeployment(settings=st).run(trained[mode])
        late = _settled(load, champ)  # the gateways reload the routing on their own beat: wait for it, not a fixed time
    s = load.summary()
    print(mode, 'load', s)
    log = state.audit_log(final['id'])
    assert final['status'] == 'rolled_back', log.tail(5).to_string()
    rb = log[log.action == 'bluegreen.rollback'].reason.iloc[0]
    assert reason in rb, rb
    assert s['failed'] == 0, [r for r in load.records if r['status'] != 200][:5]  # a raising green falls back to blue
    assert reg.champion()['version'] == champ  # aliases untouched
    r = state.routing()
    assert r.version_of('BTC-USD') == champ and 'green' not in r.slots
    assert late and all(x['version'] == champ for x in late), [x for x in late if x['version'] != champ][:3]


def _settled(load, version, window=1.0, timeout=30.0) -> list:
    "The answers of the last `window` seconds once they all come from `version` (or, after `timeout`, as they are)."
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(window)
        now = time.time()
        late = [x for x in list(load.records) if x['sent'] > now - window]
        if (late and all(x['version'] == version for x in late)) or time.monotonic() > deadline:
            return late


def test_rollback_to_a_retained_version_and_history(cluster, trained):
    from autotrader.cli import main
    from autotrader.train.registry import ModelRegistry
    from loadgen import Load

    st = cluster['st']
    live = cluster['state'].routing().version_of('BTC-USD')
    target = trained['good'] if live != trained['good'] else trained['twin']
    with Load(cluster['urls'], INSTRUMENTS, rate=200) as load:
        time.sleep(1.0)
        assert main(['deploy', 'rollback', '--to', target, '--settings', str(cluster['settings'])]) == 0
        late = _settled(load, target)
    s = load.summary()
    assert s['failed'] == 0
    assert ModelRegistry.from_settings(st).champion()['version'] == target
    assert late and all(x['version'] == target for x in late), [x for x in late if x['version'] != target][:3]
    assert main(['deploy', 'status', '--settings', str(cluster['settings'])]) == 0
    assert main(['deploy', 'history', '--settings', str(cluster['settings'])]) == 0
    assert main(['deploy', 'rollback', '--to', '999', '--settings', str(cluster['settings'])]) == 2


# ---------------------------------------------------------------- canary (per instrument, judged against the champion in shadow)


def _not_champion(st, trained) -> str:
    from autotrader.train.registry import ModelRegistry

    ch = ModelRegistry.from_settings(st).champion()['version']
    return trained['good'] if ch != trained['good'] else trained['twin']


def test_canary_good_version_goes_to_every_instrument_and_becomes_champion(cluster, trained, monkeypatch):
    from loadgen import Load
    from autotrader.deploy.canary import CanaryRollout
    from autotrader.train.registry import ModelRegistry

    monkeypatch.setenv('AUTOTRADER_ADMIN_TOKEN', TOKEN)
    st, state = cluster['st'], cluster['state']
    new = _not_champion(st, trained)
    with Load(cluster['urls'], INSTRUMENTS, rate=220) as load:
        time.sleep(1.0)
        d = CanaryRollout(settings=st).run(new)
        time.sleep(1.0)
    s = load.summary()
    print('canary load', s)
    log = state.audit_log(d['id'])
    assert d['status'] == 'succeeded', log.tail(6).to_string()
    assert s['failed'] == 0 and s['rate'] >= 200, s
    assert not _wrong_versions(state, load.records)
    stages = [json.loads(x)['routes'] for x in log[log.action == 'canary.route'].to_state]
    on_new = [sorted(i for i, r in rt.items() if i != '*' and 'canary=' in r) for rt in stages]
    assert [len(x) for x in on_new] == [2, 3, 4, 4] and all(set(a) <= set(b) for a, b in zip(on_new, on_new[1:])), (
        on_new
    )
    assert list(log[log.action == 'canary.stage'].to_state) == [
        'running/stage 0',
        'running/stage 1',
        'running/stage 2',
        'running/stage 3',
    ]
    a = state.analyses(d['id'])
    assert {'smoke', 'integration', 'error_rate', 'p99_latency_ms', 'sharpe', 'pnl'} <= set(a.check)
    assert ModelRegistry.from_settings(st).champion()['version'] == new
    r = state.routing()
    assert r.slots['blue']['version'] == new and 'canary' not in r.slots and set(r.routes) == {'*'}
    # the health pipeline reads the champion's training window and the served signals
    from autotrader.features.store import FeatureStore
    from autotrader.pipelines.health import run_health

    state.export_signals(FeatureStore(st.store.dir))
    h = run_health(st, now=pd.Timestamp(state.clock().now(), unit='s', tz='UTC'), send=False, write_metrics=False)
    assert f'champion v{new}' in h.reference_source, h.reference_source
    assert h.performance.get('signals', 0) > 0, h.performance


@pytest.mark.parametrize(
    'mode, reason', [('raises', 'error_rate'), ('slow', 'p99_latency_ms'), ('inverted', 'P&L worse')]
)
def test_bad_canary_is_rolled_back_from_the_canary_instruments_only(cluster, trained, mode, reason, monkeypatch):
    from loadgen import Load
    from bad_models import register_misbehaving
    from autotrader.deploy.canary import CanaryRollout
    from autotrader.train.registry import ModelRegistry

    monkeypatch.setenv('AUTOTRADER_ADMIN_TOKEN', TOKEN)
    st, state = cluster['st'], cluster['state']
    reg = ModelRegistry.from_settings(st)
    champ = reg.champion()['version']
    # the raising version passes its smoke test and the integration replay, then fails on live inputs
    bad = register_misbehaving(
        reg, champ, mode, healthy_calls=60, delay=0.6
    )  # more than the checks make: smoke 45, warm-up 5 + replay 48
    with Load(cluster['urls'], INSTRUMENTS, rate=200) as load:
        time.sleep(1.0)
        d = CanaryRollout(settings=st).run(bad)
        time.sleep(1.0)
    s = load.summary()
    print(mode, 'canary load', s)
    log = state.audit_log(d['id'])
    an = state.analyses(d['id'])
    sh = an[(an.check == 'sharpe') & (an.instrument == '*')]
    assert d['status'] == 'rolled_back' and d['stage'] == 0, (
        log.tail(6).to_string(),
        sh[['stage', 'verdict', 'value', 'threshold', 'detail']].to_string(),
    )
    assert reason in log[log.action == 'canary.rolling_back'].reason.iloc[0]
    canary = d['detail']['plan'][0]['instruments']
    others = [i for i in INSTRUMENTS if i not in canary]
    assert len(canary) == 2 and others
    assert s['failed'] == 0, [r for r in load.records if r['status'] != 200][:5]
    assert not _wrong_versions(state, load.records)
    assert all(r['version'] == champ for r in load.records if r['instrument'] in others)  # never touched
    assert any(r['version'] == bad for r in load.records if r['instrument'] in canary)  # the canary did serve
    assert reg.champion()['version'] == champ and state.routing().routes.keys() == {'*'}


@pytest.mark.parametrize('mode, check', [('slow', 'smoke test failed'), ('raises', 'failed')])
def test_pre_deployment_checks_stop_a_bad_version_before_any_instrument(cluster, trained, mode, check, monkeypatch):
    from bad_models import register_misbehaving
    from autotrader.deploy.canary import CanaryRollout
    from autotrader.train.registry import ModelRegistry

    monkeypatch.setenv('AUTOTRADER_ADMIN_TOKEN', TOKEN)
    st, state = cluster['st'], cluster['state']
    reg = ModelRegistry.from_settings(st)
    champ = reg.champion()['version']
    bad = register_misbehaving(reg, champ, mode, healthy_calls=0, delay=0.6)  # misbehaves from its first prediction
    gen = state.generation()
    d = CanaryRollout(settings=st).run(bad)
    assert d['status'] == 'failed' and check in state.audit_log(d['id']).reason.iloc[-1]
    routes = [json.loads(x)['routes'] for x in state.audit_log(d['id']).to_state.dropna() if x.startswith('{')]
    assert all(set(r) == {'*'} and r['*'].startswith('blue=') for r in routes)  # no instrument was ever routed to it
    assert state.routing().routes.keys() == {'*'} and 'canary' not in state.routing().slots and state.generation() > gen


def test_controller_killed_mid_stage_resumes_without_skipping_or_repeating(cluster, trained, monkeypatch):
    from loadgen import Load
    from autotrader.cli import main
    from autotrader.train.registry import ModelRegistry

    monkeypatch.setenv('AUTOTRADER_ADMIN_TOKEN', TOKEN)
    st, state = cluster['st'], cluster['state']
    new = _not_champion(st, trained)
    env = {**os.environ, 'AUTOTRADER_ADMIN_TOKEN': TOKEN, 'MLFLOW_DISABLE_TELEMETRY': 'true'}
    with Load(cluster['urls'], INSTRUMENTS, rate=200) as load:
        p = subprocess.Popen(
            [
                sys.executable,
                '-m',
                'autotrader.cli',
                'deploy',
                'canary',
                new,
                '--force',
                '--settings',
                str(cluster['settings']),
            ],
            env=env,
            stdout=open(cluster['settings'].parent / 'controller.log', 'wb'),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            d = state.deployment()
            if d is not None and d['status'] == 'running' and d['stage'] >= 1:
                break
            time.sleep(0.2)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        killed = state.deployment()
        assert killed is not None and killed['status'] == 'running', (
            killed,
            (cluster['settings'].parent / 'controller.log').read_text()[-3000:],
        )
        time.sleep(1.0)
        assert main(['deploy', 'resume', '--settings', str(cluster['settings'])]) == 0
        time.sleep(1.0)
    d = state.deployment(killed['id'])
    log = state.audit_log(d['id'])
    assert d['status'] == 'succeeded', log.tail(6).to_string()
    assert list(log[log.action == 'canary.stage'].to_state) == [
        'running/stage 0',
        'running/stage 1',
        'running/stage 2',
        'running/stage 3',
    ]
    assert load.summary()['failed'] == 0
    assert ModelRegistry.from_settings(st).champion()['version'] == new


def test_a_window_without_traffic_does_not_pass(cluster, trained, monkeypatch):
    import copy
    from autotrader.deploy.canary import CanaryRollout
    from autotrader.train.registry import ModelRegistry

    monkeypatch.setenv('AUTOTRADER_ADMIN_TOKEN', TOKEN)
    st = copy.deepcopy(cluster['st'])
    st.deploy.on_inconclusive = 'rollback'
    champ = ModelRegistry.from_settings(st).champion()['version']
    d = CanaryRollout(settings=st).run(_not_champion(st, trained))  # nobody asks for signals
    assert d['status'] == 'rolled_back' and d['stage'] == 0
    why = cluster['state'].audit_log(d['id']).query("action == 'canary.rolling_back'").reason.iloc[0]
    assert 'no traffic' in why and 'inconclusive' in why, why
    assert ModelRegistry.from_settings(st).champion()['version'] == champ


def test_the_specification_examples_run_as_written(cluster, trained, monkeypatch):
    from loadgen import Load
    from autotrader.deploy.bluegreen import BlueGreenDeployment
    from autotrader.deploy.canary import CanaryRollout

    monkeypatch.setenv('AUTOTRADER_SETTINGS', str(cluster['settings']))
    monkeypatch.setenv('AUTOTRADER_ADMIN_TOKEN', TOKEN)
    model_version = _not_champion(cluster['st'], trained)
    with Load(cluster['urls'], INSTRUMENTS, rate=200) as load:
        time.sleep(1.0)
        # canary
        canary = CanaryRollout()
        instruments = canary.select_canary_instruments(count=2)
        canary.deploy_to_instruments(model_version=model_version, instruments=instruments)
        result = canary.monitor_canary(duration_seconds=3600)
        if not result['healthy']:
            canary.rollback(instruments)
        assert set(result) >= {'healthy', 'instruments', 'reasons'} and set(result['instruments']) == set(instruments)
        assert len(instruments) == 2 and set(instruments) <= set(INSTRUMENTS)
        assert canary.select_instruments_by_volume(percentile=0.25)
        # blue/green
        bg = BlueGreenDeployment(environment='production')
        endpoint = bg.deploy_green(model_version=model_version)
        if bg.wait_for_ready(endpoint, timeout=300):
            bg.switch_traffic(from_env='blue', to_env='green')
            bg.archive_blue(retention_hours=24)
        final = bg.monitor().watch()
    assert final['status'] in ('succeeded', 'rolled_back')
    assert load.summary()['failed'] == 0


# ---------------------------------------------------------------- the rollout pipeline (papermill, replay clock, local gateway)


def test_rollout_pipeline_acts_on_the_decision(trained, tmp_path):
    "No decision or a refused one: nothing happens, and the report says why. A promoted one: a canary on a replay clock."
    from autotrader.config import load_settings
    from autotrader.ops.runner import run_pipeline
    from autotrader.pipelines.evaluate import evaluate_version
    from autotrader.train.core import decision_path
    from autotrader.train.registry import ModelRegistry
    from autotrader.deploy.state import DeploymentState

    p = _write_settings(trained['dir'], f"sqlite:///{tmp_path / 'rollout-state.db'}")
    st = load_settings(p, env={})
    reg = ModelRegistry.from_settings(st)
    champ = reg.champion()['version']
    # a fresh challenger (v1's twin, re-registered) that evaluate refuses: it does not beat the champion
    run = reg.client.get_model_version(reg.model_name, champ).run_id
    twin = reg.register(f"runs:/{run}/model", alias='challenger')
    assert not evaluate_version(st, twin).promote
    r = run_pipeline(
        'rollout', {'clock': 'replay'}, settings_path=str(p), reports_dir=str(tmp_path / 'reports'), progress=False
    )
    assert r.status == 'ok' and r.metrics['outcome'] == 'skipped' and r.metrics['champion'] == champ
    assert 'was not promoted by evaluate' in (r.run_dir / 'report.html').read_text()
    assert DeploymentState.from_settings(st).deployment() is None
    # the same version with a decision to promote (as evaluate records it when the gates pass): a canary runs
    d = json.loads(decision_path(st, twin).read_text())
    d.update(promote=True, reasons=['all gates pass (test)'])
    decision_path(st, twin).write_text(json.dumps(d))
    t = time.time()
    r = run_pipeline(
        'rollout', {'clock': 'replay'}, settings_path=str(p), reports_dir=str(tmp_path / 'reports'), progress=False
    )
    print('rollout pipeline', round(time.time() - t, 1), 's', r.metrics)
    assert r.status == 'ok', r.error
    assert r.metrics['outcome'] == 'succeeded' and r.metrics['strategy'] == 'canary' and r.metrics['champion'] == twin
    html = (r.run_dir / 'report.html').read_text()
    for s in (
        'Stage timeline',
        'Routing per stage',
        'Metrics per instrument',
        'Paired P&amp;L',
        'Audit log',
        'canary.succeeded',
    ):
        assert s in html, s
    assert TOKEN not in html and 'AUTOTRADER_ADMIN_TOKEN=' not in html
    assert DeploymentState.from_settings(st).clock().mode == 'wall'  # the replay clock is put back


# ---------------------------------------------------------------- the controller on a manual clock (in process)


class World:
    """A copy of the trained registry and store, a SQLite deployment state on a manual clock, and one gateway replica
    served by uvicorn in a thread (so the canary's integration replay has a URL) whose serving core the test calls
    directly as traffic. Hours of stages take seconds: the controller sleeps on the manual clock."""

    def __init__(self, trained, tmp, monkeypatch, canary_kv=None, **deploy):
        import sqlite3
        import threading
        import uvicorn
        from autotrader.clock import ManualClock
        from autotrader.config import load_settings
        from autotrader.deploy.gateway import create_app, bootstrap_routing
        from autotrader.deploy.state import DeploymentState
        from autotrader.train.registry import ModelRegistry

        monkeypatch.setenv('AUTOTRADER_ADMIN_TOKEN', TOKEN)
        shutil.copytree(
            trained['dir'], tmp / 'w', ignore=shutil.ignore_patterns('*.log', '*.db', '*.db-wal', '*.db-shm')
        )
        for db in Path(trained['dir']).rglob('*.db'):  # SQLite (MLflow, optuna) copied consistently, WAL included
            if db.name.startswith(('deploy', 'rollout-state', 'manual')):
                continue
            with sqlite3.connect(db) as src, sqlite3.connect(tmp / 'w' / db.relative_to(trained['dir'])) as dst:
                src.backup(dst)
        # latency limits far above a busy test host's hiccups; the slow versions here take a second a call
        kv = dict(
            analysis_seconds=3600,
            min_requests=20,
            min_signals=40,
            watch_minutes=240,
            max_hold_minutes=7 * 1440,
            latency_floor_ms=500,
            **deploy,
        )
        self.settings = _write_settings(
            tmp / 'w',
            f"sqlite:///{tmp / 'w' / 'manual.db'}",
            canary_kv={'max_p99_ms': 500, 'smoke_latency_ms': 500, **(canary_kv or {})},
            **kv,
        )
        self.st = load_settings(self.settings, env={})
        self.clock = ManualClock(pd.Timestamp('2024-10-01T00:00Z').timestamp())
        self.state = DeploymentState.from_settings(self.st, self.clock)
        self.reg = ModelRegistry.from_settings(self.st)
        # every world starts alike, whatever the module's earlier tests promoted in `trained`: champion = good
        c = self.reg.client
        c.set_registered_model_alias(self.reg.model_name, 'champion', str(trained['good']))
        if self.reg.version('previous-champion') is not None:
            c.delete_registered_model_alias(self.reg.model_name, 'previous-champion')
        bootstrap_routing(self.state, self.reg, actor='test')
        port = free_port()
        self.app = create_app(self.st, url=f'http://127.0.0.1:{port}', replica='manual-1')
        self.gw = self.app.state.gateway
        self.gw.clock = self.clock
        self.gw.state.clock_override = self.clock
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host='127.0.0.1', port=port, log_level='warning', lifespan='on')
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 120
        while not (self.server.started and self.gw.ready()[0]):
            assert time.monotonic() < deadline and self.thread.is_alive(), 'the in-process gateway did not start'
            time.sleep(0.05)
        self.served = []  # (clock time, instrument, version, status)

    def traffic(self, per_instrument: int = 3):
        "What clients ask at the current clock time: every instrument's signal a few times; logs flushed at once."
        self.gw.reload()
        for i in INSTRUMENTS:
            for _ in range(per_instrument):
                code, body = self.gw.signal(i)
                self.served.append((self.clock.now(), i, body.get('version'), code))
        self.gw.score_shadows()
        self.gw.flush()

    def walk(self, minutes: float, every: float = 30):
        "Advance the clock `minutes`, with traffic every `every` minutes (a baseline before a deployment)."
        for _ in range(int(minutes // every)):
            self.traffic()
            self.clock.advance(every * 60)

    def close(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def world(trained, tmp_path, monkeypatch):
    w = World(trained, tmp_path, monkeypatch)
    yield w
    w.close()


@pytest.fixture
def make_world(trained, tmp_path, monkeypatch):
    made = []

    def make(**kw):
        made.append(World(trained, tmp_path, monkeypatch, **kw))
        return made[-1]

    yield make
    for w in made:
        w.close()


def _run(ctl_run, w):
    t = time.perf_counter()
    d = ctl_run(tick=lambda ctl: w.traffic(), poll=600)  # traffic every 10 minutes of clock time
    print(f"controller run: {time.perf_counter() - t:.1f} s wall for {(w.clock.now() - w.t0) / 3600:.1f} h of clock")
    return d


def test_manual_clock_canary_good_version_passes_every_stage(world, trained):
    from autotrader.deploy.controller import RolloutController

    w = world
    champ = w.reg.champion()['version']
    new = trained['twin']
    w.walk(120)
    w.t0 = w.clock.now()
    ctl = RolloutController('canary', w.st, state=w.state, registry=w.reg, clock=w.clock, log=print)
    d = _run(lambda tick, poll: ctl.run(new, tick=tick, poll=poll), w)
    log = w.state.audit_log(d['id'])
    assert d['status'] == 'succeeded', log.tail(8)[['action', 'reason']].to_string()
    assert list(log[log.action == 'canary.stage'].to_state) == [
        'running/stage 0',
        'running/stage 1',
        'running/stage 2',
        'running/stage 3',
    ]
    # every decision at its clock time: stage k starts when stage k-1's window ended (or later, while holding)
    stages = log[log.action == 'canary.stage']
    plan = d['detail']['plan']
    for k in range(1, len(plan)):
        assert (stages.clock_at.iloc[k] - stages.clock_at.iloc[k - 1]).total_seconds() >= plan[k - 1][
            'duration_seconds'
        ]
    # analyses at their cadence, never more often (one per analysis_seconds, plus one at each window's end)
    an = log[log.action == 'canary.analysis'].clock_at.diff().dt.total_seconds().dropna()
    assert (an > 0).all() and an.min() >= 1, an.describe()
    assert w.reg.champion()['version'] == new and w.state.routing().slots['blue']['version'] == new
    assert {v for t, i, v, c in w.served if c == 200} <= {champ, new}


@pytest.mark.parametrize(
    'mode, reason', [('raises', 'error_rate'), ('slow', 'p99_latency_ms'), ('inverted', 'P&L worse')]
)
def test_manual_clock_bad_canary_is_rolled_back_from_its_instruments_only(make_world, trained, mode, reason):
    from bad_models import register_misbehaving
    from autotrader.deploy.controller import RolloutController

    # a loaded CI host can stretch any call past 500 ms: only the slow version's run judges latency
    w = make_world(canary_kv=None if mode == 'slow' else dict(max_p99_ms=60_000))
    champ = w.reg.champion()['version']
    bad = register_misbehaving(w.reg, champ, mode, healthy_calls=100, delay=0.7)  # past the checks' ~55 calls
    w.walk(60)
    w.t0 = w.clock.now()
    ctl = RolloutController('canary', w.st, state=w.state, registry=w.reg, clock=w.clock, log=print)
    d = _run(lambda tick, poll: ctl.run(bad, tick=tick, poll=poll), w)
    log = w.state.audit_log(d['id'])
    # rolled back in the stage where it misbehaved (a version that raises on some inputs only, or turns slow after
    # its first calls, may pass stage 0's few bars: the gateway calls a model once per bar and instrument)
    assert d['status'] == 'rolled_back' and (d['stage'] == 0 or mode != 'inverted'), log.tail(6)[
        ['action', 'reason']
    ].to_string()
    assert reason in log[log.action == 'canary.rolling_back'].reason.iloc[0]
    canary = d['detail']['plan'][d['stage']]['instruments']
    others = [i for i in INSTRUMENTS if i not in canary]
    assert all(v == champ for t, i, v, c in w.served if i in others and c == 200)  # never touched
    assert w.reg.champion()['version'] == champ and set(w.state.routing().routes) == {'*'}
    # the breach is acted on at the first analysis that sees it, not at the end of the window
    an = w.state.analyses(d['id'])
    first_fail = an[an.verdict == 'fail'].clock_at.min()
    assert log.clock_at.iloc[-1] == first_fail, (log.clock_at.iloc[-1], first_fail)


def test_manual_clock_blue_green_promotes_a_good_green_and_rolls_back_a_raising_one(world, trained):
    from bad_models import register_misbehaving
    from autotrader.deploy.bluegreen import BlueGreenDeployment

    w = world
    champ = w.reg.champion()['version']
    w.walk(150)
    w.t0 = w.clock.now()  # blue's baseline traffic
    bg = BlueGreenDeployment(settings=w.st, state=w.state, registry=w.reg, clock=w.clock)
    d = _run(lambda tick, poll: bg.ctl.run(trained['twin'], tick=tick, poll=poll), w)
    log = w.state.audit_log(d['id'])
    assert d['status'] == 'succeeded', log.tail(6)[['action', 'reason']].to_string()
    watch = (
        log[log.action == 'bluegreen.succeeded'].clock_at.iloc[0]
        - log[log.action == 'bluegreen.stage'].clock_at.iloc[0]
    )
    assert watch.total_seconds() >= w.st.deploy.watch_minutes * 60
    assert w.reg.champion()['version'] == trained['twin'] and w.reg.version('previous-champion')['version'] == champ
    bad = register_misbehaving(w.reg, trained['twin'], 'raises', healthy_calls=10)
    w.walk(150)
    w.t0 = w.clock.now()
    d = _run(
        lambda tick, poll: BlueGreenDeployment(settings=w.st, state=w.state, registry=w.reg, clock=w.clock).ctl.run(
            bad, tick=tick, poll=poll
        ),
        w,
    )
    assert d['status'] == 'rolled_back' and 'error_rate' in w.state.audit_log(d['id']).reason.iloc[-1]
    assert w.state.routing().version_of('BTC-USD') == trained['twin'] and w.reg.champion()['version'] == trained['twin']


def test_manual_clock_controller_resumes_from_the_state_alone(world, trained):
    "A controller abandoned mid-stage (as if SIGKILLed) and a fresh one resuming: no stage skipped or repeated."
    from autotrader.deploy.controller import RolloutController, resume
    from autotrader.deploy.state import StateError

    w = world
    new = trained['twin']
    w.walk(60)
    w.t0 = w.clock.now()
    ctl = RolloutController('canary', w.st, state=w.state, registry=w.reg, clock=w.clock, log=print)
    ctl.start(new)
    while (d := ctl.step())['status'] != 'running' or d['stage'] < 1:
        w.traffic()
        w.clock.advance(ctl._wait(d, None))
    held = d['detail']['lease']
    assert held['holder'] == ctl.lease_id
    del ctl  # gone: nothing of it is kept but the state
    # its lease is still valid and its process (this one) alive: a second controller is refused …
    with pytest.raises(StateError, match='driven by another controller'):
        RolloutController('canary', w.st, state=w.state, registry=w.reg, clock=w.clock, log=print).step()
    # … until the operator takes over (audited)
    d = _run(
        lambda tick, poll: resume(
            w.st, clock=w.clock, state=w.state, registry=w.reg, log=print, tick=tick, poll=poll, take_over=True
        ),
        w,
    )
    log = w.state.audit_log(d['id'])
    assert d['status'] == 'succeeded', log.tail(6)[['action', 'reason']].to_string()
    assert list(log[log.action == 'canary.stage'].to_state) == [
        'running/stage 0',
        'running/stage 1',
        'running/stage 2',
        'running/stage 3',
    ]
    taken = log[log.action == 'canary.lease']
    assert len(taken) == 2 and taken.reason.iloc[-1].startswith('took over'), taken[
        ['from_state', 'to_state', 'reason']
    ]
