"""No client can count against a version, and no version can slow another: hostile input to the gateway is a 4xx before
any model is called (the table is printed), never an error in the statistics the rollout analysis reads; a failing
version falls back on POST as on GET; a slow version leaves the other routes' latency alone; readiness follows the
state database; and a canary of an unchanged champion under a hostile mix of requests is promoted.

In process: the gateway of tests/test_deploy.py's `World` (uvicorn in a thread, SQLite state on a manual clock),
requests over real HTTP; readiness on a throwaway PostgreSQL stopped and started again."""

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from local_servers import free_port
from test_deploy import INSTRUMENTS, TOKEN, World, _pg_bin, _write_settings, get, trained  # noqa: F401  (trained: the fixture)

ADMIN = {'Authorization': f'Bearer {TOKEN}'}


def request(url: str, method: str, path: str, body=None, headers=None, chunked: bool = False) -> tuple[int, str]:
    "One HTTP request on its own connection: (status, body text); a body may be bytes or (chunked) an iterable of bytes."
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        c.request(
            method,
            path,
            body=body,
            headers={'Content-Type': 'application/json', **(headers or {})},
            encode_chunked=chunked,
        )
        r = c.getresponse()
        return r.status, r.read().decode('utf-8', 'replace')
    finally:
        c.close()


def until(cond, timeout: float = 60, what: str = 'condition'):
    deadline = time.monotonic() + timeout
    while not (v := cond()):
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.05)
    return v


def route(w, slots: dict, routes: dict):
    "Apply a routing (replacing every route) and make the in-process gateway take it now."
    w.state.apply_routing(slots, routes, action='test', actor='test', reason='test routing', replace_routes=True)
    g = w.state.generation()
    w.gw.reload()  # (or the gateway's routing poll did already)
    until(lambda: w.gw.applied >= g, 60, 'the routing applied')
    missing = [s for s in slots if slots[s] and s not in w.gw.snap.models]
    assert not missing, (missing, w.gw.load_errors)


def stats_of(w, versions=None) -> pd.DataFrame:
    w.gw.flush()
    return w.state.request_stats(versions=versions)


def errors_metric(w) -> float:
    return sum(s.value for s in w.gw.m['errors'].collect()[0].samples)


@pytest.fixture(scope='module')
def world(trained, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        w = World(trained, tmp_path_factory.mktemp('gw-input'), mp)
        try:
            yield w
        finally:
            w.close()


@pytest.fixture
def champion_only(world):
    "Every instrument on the champion in slot blue (and back to it after the test)."
    champ = world.reg.champion()['version']
    route(world, {'blue': {'version': champ, 'status': 'live'}, 'canary': None, 'green': None}, {'*': {'slot': 'blue'}})
    yield champ
    route(world, {'blue': {'version': champ, 'status': 'live'}, 'canary': None, 'green': None}, {'*': {'slot': 'blue'}})


def _good(w) -> dict:
    "A valid feature row of the routed version: a stored row of BTC-USD."
    h = w.gw.snap.resolve('BTC-USD')[1]
    c = w.gw.cache(h.dataset)
    row = c.lookup('BTC-USD', w.clock.now())
    return {f: float(x) if np.isfinite(x) else None for f, x in zip(h.features, c.frame('BTC-USD', row, h.features)[0])}


def hostile_requests(good: dict) -> list[tuple[str, str, str, object, dict, bool]]:
    "(label, method, path, body, headers, chunked): what a hostile or careless client sends."
    f0 = next(iter(good))

    def feats(**kv):
        return json.dumps({'features': {**good, **kv}, 'instrument': 'BTC-USD'})

    def raw(value: str):
        return feats(**{f0: 4242.4242}).replace('4242.4242', value).encode()

    rows = json.dumps({'rows': [good] * 999 + [{**good, f0: 4242.4242}]}).replace('4242.4242', 'Infinity').encode()
    pad = b'{"rows": [' + b','.join([json.dumps(good).encode()] * (6_000_000 // len(json.dumps(good)) + 1)) + b']}'
    return [
        ('1e400', 'POST', '/v1/predict', raw('1e400'), {}, False),
        ('-1e400', 'POST', '/v1/predict', raw('-1e400'), {}, False),
        ('Infinity', 'POST', '/v1/predict', raw('Infinity'), {}, False),
        ('NaN', 'POST', '/v1/predict', raw('NaN'), {}, False),
        ('1e300 (out of range)', 'POST', '/v1/predict', raw('1e300'), {}, False),
        ('10**400 (an integer)', 'POST', '/v1/predict', raw('1' + '0' * 400), {}, False),
        ('5000-digit integer', 'POST', '/v1/predict', raw('1' * 5000), {}, False),
        ('a string', 'POST', '/v1/predict', feats(**{f0: 'high'}).encode(), {}, False),
        ('a boolean', 'POST', '/v1/predict', feats(**{f0: True}).encode(), {}, False),
        ('a list', 'POST', '/v1/predict', feats(**{f0: [1.0]}).encode(), {}, False),
        ('nested 10k deep in a feature', 'POST', '/v1/predict', raw('[' * 10_000 + ']' * 10_000), {}, False),
        ('nested 10k deep body', 'POST', '/v1/predict', b'[' * 10_000 + b']' * 10_000, {}, False),
        ('nested 100k deep objects', 'POST', '/v1/predict', b'{"a":' * 100_000 + b'1' + b'}' * 100_000, {}, False),
        ('6 MB body', 'POST', '/v1/predict', pad, {}, False),
        (
            '6 MB body, chunked',
            'POST',
            '/v1/predict',
            (pad[i : i + 65536] for i in range(0, len(pad), 65536)),
            {},
            True,
        ),
        ('Content-Length 1 GB', 'POST', '/v1/predict', b'{}', {'Content-Length': str(10**9)}, False),
        ('1001 rows', 'POST', '/v1/predict', json.dumps({'rows': [good] * 1001}).encode(), {}, False),
        ('1000 rows, one Infinity', 'POST', '/v1/predict', rows, {}, False),
        (
            'wrong feature name',
            'POST',
            '/v1/predict',
            json.dumps({'features': {**{k: v for k, v in good.items() if k != f0}, f0 + '_x': 1.0}}).encode(),
            {},
            False,
        ),
        ('missing features', 'POST', '/v1/predict', json.dumps({'features': {f0: 1.0}}).encode(), {}, False),
        (
            '10k unknown features',
            'POST',
            '/v1/predict',
            json.dumps({'features': {**good, **{f'x{i}': 0 for i in range(10_000)}}}).encode(),
            {},
            False,
        ),
        ('malformed JSON', 'POST', '/v1/predict', b'{"features": {', {}, False),
        ('not UTF-8', 'POST', '/v1/predict', b'\xff\xfe{}', {}, False),
        ('empty body', 'POST', '/v1/predict', b'', {}, False),
        ('instrument 7', 'POST', '/v1/predict', json.dumps({'features': good, 'instrument': 7}).encode(), {}, False),
        (
            'instrument of 10k chars',
            'POST',
            '/v1/predict',
            json.dumps({'features': good, 'instrument': 'X' * 10_000}).encode(),
            {},
            False,
        ),
        (
            'unknown instrument',
            'POST',
            '/v1/predict',
            json.dumps({'features': good, 'instrument': 'NOPE-USD'}).encode(),
            {},
            False,
        ),
        ('GET unknown instrument', 'GET', '/v1/signal/NOPE-USD', None, {}, False),
        ('GET 5k-char instrument', 'GET', '/v1/signal/' + 'X' * 5000, None, {}, False),
        ('GET instrument with NUL', 'GET', '/v1/signal/BTC%00USD', None, {}, False),
        ('pinned as_of=nan', 'GET', '/v1/slots/blue/signal/BTC-USD?as_of=nan', None, ADMIN, False),
        ('pinned as_of=1e400', 'GET', '/v1/slots/blue/signal/BTC-USD?as_of=1e400', None, ADMIN, False),
        ('pinned as_of=-1', 'GET', '/v1/slots/blue/signal/BTC-USD?as_of=-1', None, ADMIN, False),
        ('pinned as_of=garbage', 'GET', '/v1/slots/blue/signal/BTC-USD?as_of=' + 'z' * 100, None, ADMIN, False),
        ('pinned as_of=year 1900', 'GET', '/v1/slots/blue/signal/BTC-USD?as_of=1900-01-01', None, ADMIN, False),
        ('pinned unknown slot', 'GET', '/v1/slots/nope/signal/BTC-USD', None, ADMIN, False),
        ('pinned without token', 'GET', '/v1/slots/blue/signal/BTC-USD', None, {}, False),
        ('routing without token', 'GET', '/v1/routing', None, {}, False),
        ('reload with a wrong token', 'POST', '/v1/admin/reload', b'', {'Authorization': 'Bearer nope'}, False),
    ]


def test_hostile_input_is_a_4xx_and_never_an_error_of_the_version(world, champion_only):
    w = world
    url = w.gw.url
    good = _good(w)
    code, body = request(url, 'POST', '/v1/predict', json.dumps({'features': good, 'instrument': 'BTC-USD'}).encode())
    assert code == 200 and 0 <= json.loads(body)['probability'] <= 1, body
    before = stats_of(w)
    errors_before = errors_metric(w)
    table = []
    for label, method, path, data, headers, chunked in hostile_requests(good):
        t = time.perf_counter()
        code, text = request(url, method, path, data, headers, chunked)
        table.append((label, code, text, (time.perf_counter() - t) * 1e3))
    print('\nhostile input → code → body')
    for label, code, text, ms in table:
        print(f"  {label:32s} → {code} → {text[:150]}  ({ms:.0f} ms)")
    bad = [(label, code, text[:200]) for label, code, text, _ in table if not 400 <= code < 500]
    assert not bad, bad
    for label, code, text, _ in table:
        err = json.loads(text)['error']
        assert err and len(text) < 2000, (label, text[:300])
        for leak in ('Traceback', 'ValueError', 'RecursionError', 'Input X contains', 'File "'):
            assert leak not in text, (label, text[:300])
    # none of them reached a model, counted as an error, or entered the statistics the rollout analysis reads
    after = stats_of(w)
    assert int(after.errors.sum()) == int(before.errors.sum()), after
    assert errors_metric(w) == errors_before
    # every answer counted by its code, and the server still answers (no reset connections)
    n4 = sum(s.value for s in w.gw.m['requests'].collect()[0].samples if s.labels['code'].startswith('4'))
    assert n4 >= len(table), n4
    assert request(url, 'GET', '/healthz')[0] == 200 and request(url, 'GET', '/v1/signal/BTC-USD')[0] == 200
    # the admin endpoints: 401 without the token; the routing detail with it
    code, text = request(url, 'GET', '/v1/routing', headers=ADMIN)
    assert code == 200 and json.loads(text)['served']['*']['version'] == champion_only


def test_admin_endpoints_are_503_only_when_no_token_is_configured(world, champion_only, monkeypatch):
    url = world.gw.url
    monkeypatch.delenv('AUTOTRADER_ADMIN_TOKEN')
    for method, path in (
        ('GET', '/v1/routing'),
        ('POST', '/v1/admin/reload'),
        ('GET', '/v1/slots/blue/signal/BTC-USD'),
    ):
        code, text = request(url, method, path, b'' if method == 'POST' else None, ADMIN)
        assert code == 503 and 'no admin token is configured' in text, (path, code, text)
    monkeypatch.setenv('AUTOTRADER_ADMIN_TOKEN', TOKEN)
    assert request(url, 'GET', '/v1/routing')[0] == 401
    assert request(url, 'GET', '/metrics')[0] == 200  # open: Prometheus scrapes it without credentials


def test_a_failing_version_falls_back_on_post_as_on_get(world, champion_only, trained):
    "BTC-USD on a version that raises, its standby the champion: POST and GET are answered by the champion (fallback);"
    "ETH-USD on the raising version without a standby: a 500 that names no exception."
    w = world
    champ = champion_only
    bad = trained['raises']
    route(
        w,
        {'blue': {'version': champ, 'status': 'live'}, 'canary': {'version': bad, 'status': 'live'}},
        {'*': {'slot': 'blue'}, 'BTC-USD': {'slot': 'canary', 'shadow_slot': 'blue'}, 'ETH-USD': {'slot': 'canary'}},
    )
    h = w.gw.snap.models['canary']
    thr = h.model._model_impl.python_model.threshold  # tests/bad_models.py: raises above it
    good = _good(w)
    f0 = h.features[0]
    row = {**good, f0: thr + 1.0}
    t0 = w.clock.now()
    stats_before = stats_of(w, [bad])
    code, text = request(
        w.gw.url, 'POST', '/v1/predict', json.dumps({'features': row, 'instrument': 'BTC-USD'}).encode()
    )
    body = json.loads(text)
    print('POST, fallback:', code, text[:300])
    assert code == 200 and body['version'] == champ and body['fallback_from'] == bad and body['slot'] == 'blue', text
    code, text = request(
        w.gw.url, 'POST', '/v1/predict', json.dumps({'rows': [row, row], 'instrument': 'BTC-USD'}).encode()
    )
    assert code == 200 and json.loads(text)['fallback_from'] == bad and len(json.loads(text)['predictions']) == 2, text
    code, text = request(
        w.gw.url, 'POST', '/v1/predict', json.dumps({'features': row, 'instrument': 'ETH-USD'}).encode()
    )
    print('POST, no fallback:', code, text[:300])
    assert code == 500 and f"v{bad} failed: internal error (request id " in text and 'planted' not in text, text
    # the version's failures are counted against it (a fallback is a failure of the routed version)
    s = stats_of(w, [bad])
    assert int(s.errors.sum()) - int(stats_before.errors.sum()) == 3, s
    fb = {
        (x.labels['instrument'], x.labels['version'], x.labels['fallback_version']): x.value
        for x in w.gw.m['fallbacks'].collect()[0].samples
    }
    assert fb[('BTC-USD', bad, champ)] >= 2, fb
    # a hostile body on the failing route is still a 4xx, not a failure of either version
    code, _ = request(
        w.gw.url, 'POST', '/v1/predict', json.dumps({'features': {**row, f0: 'x'}, 'instrument': 'BTC-USD'}).encode()
    )
    assert code == 422 and int(stats_of(w, [bad]).errors.sum()) - int(stats_before.errors.sum()) == 3


def _load(url: str, path: str, body: bytes, threads: int, seconds: float):
    "`threads` clients, each one request at a time on its own keep-alive connection, for `seconds`: [(code, ms)]."
    out, stop = [], time.monotonic() + seconds
    u = urllib.parse.urlsplit(url)

    def client():
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        mine = []
        try:
            while time.monotonic() < stop:
                t = time.perf_counter()
                c.request('POST', path, body=body, headers={'Content-Type': 'application/json'})
                r = c.getresponse()
                r.read()
                mine.append((r.status, (time.perf_counter() - t) * 1e3))
        finally:
            c.close()
            out.extend(mine)

    ts = [threading.Thread(target=client) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


# clients in a process of their own (their CPU is not the server's GIL): each sends one request every `every` seconds
# (or at once when the previous answer took longer), for `seconds`; prints {code: [ms, ...]}
_CLIENTS = """
import http.client, json, sys, threading, time
host, port, path, body, n, every, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], open(sys.argv[4], 'rb').read(), int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
out, stop = {}, time.monotonic() + seconds
def client():
    c = http.client.HTTPConnection(host, port, timeout=60)
    while time.monotonic() < stop:
        t = time.perf_counter()
        c.request('POST', path, body=body, headers={'Content-Type': 'application/json'}); r = c.getresponse(); r.read()
        ms = (time.perf_counter() - t) * 1e3; out.setdefault(r.status, []).append(ms)
        time.sleep(max(0.0, every - ms / 1e3))
ts = [threading.Thread(target=client) for _ in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(out))
"""


def _with_clients(url: str, body_file: Path, n: int, every: float, seconds: float, measure):
    "Run `n` paced clients of BTC-USD in another process while `measure()` runs here: (measure's result, {code: [ms]})."
    import sys

    u = urllib.parse.urlsplit(url)
    p = subprocess.Popen(
        [
            sys.executable,
            '-c',
            _CLIENTS,
            u.hostname,
            str(u.port),
            '/v1/predict',
            str(body_file),
            str(n),
            str(every),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # the clients' ramp (pacing, not waiting on a condition)
        res = measure()
        out, _ = p.communicate(timeout=seconds + 60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return res, {int(k): v for k, v in json.loads(out).items()}


def test_a_slow_version_does_not_slow_another_route(world, champion_only, trained, tmp_path):
    """ETH-USD on the champion, measured from 4 clients while 40 clients (another process, 5 requests/s each) ask
    BTC-USD: first with BTC-USD on the champion too (the baseline, under the same load), then on a version that sleeps
    150 ms per call. The other route's p99 must not follow the slow version."""
    w = world
    champ = champion_only
    slow = trained['slow']
    good = _good(w)
    other = json.dumps({'features': good, 'instrument': 'ETH-USD'}).encode()
    (tmp_path / 'btc.json').write_bytes(json.dumps({'features': good, 'instrument': 'BTC-USD'}).encode())
    measure = lambda: _load(w.gw.url, '/v1/predict', other, 4, 6)
    p99 = lambda xs: float(np.percentile([ms for c, ms in xs if c == 200], 99))
    route(
        w,
        {'blue': {'version': champ, 'status': 'live'}, 'canary': {'version': champ, 'status': 'live'}},
        {'*': {'slot': 'blue'}, 'BTC-USD': {'slot': 'canary'}},
    )
    base, fast = _with_clients(w.gw.url, tmp_path / 'btc.json', 40, 0.2, 8, measure)
    route(
        w,
        {'blue': {'version': champ, 'status': 'live'}, 'canary': {'version': slow, 'status': 'live'}},
        {'*': {'slot': 'blue'}, 'BTC-USD': {'slot': 'canary'}},
    )
    loaded, slowr = _with_clients(w.gw.url, tmp_path / 'btc.json', 40, 0.2, 8, measure)
    n = lambda r: {c: len(v) for c, v in r.items()}
    print(
        f"\nother route p99: {p99(base):.1f} ms with BTC-USD on the champion, {p99(loaded):.1f} ms with it on the slow version "
        f"({len(base)} and {len(loaded)} requests); BTC-USD answers: fast {n(fast)}, slow {n(slowr)} "
        f"(p50 of the slow 200s {np.median(slowr.get(200, [0])):.0f} ms)"
    )
    assert all(c == 200 for c, _ in base + loaded) and set(fast) == {200}
    assert slowr.get(200) and set(slowr) <= {200, 503}  # beyond its 32 calls in flight: 503 at once, not a queue
    # the other route does not wait for the slow version: its p99 stays near the baseline measured under the same load,
    # far below the slow calls themselves
    slow50 = float(np.median(slowr[200]))
    assert p99(loaded) <= max(3 * p99(base), p99(base) + 0.5 * slow50), (p99(base), p99(loaded), slow50)


@pytest.fixture
def pg_cluster():
    "A throwaway PostgreSQL that the test can stop and start: yields (url, stop, start)."
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
    start = lambda: run(
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
    stop = lambda: run('pg_ctl', '-D', f'{d}/data', '-m', 'fast', '-w', 'stop')
    start()
    try:
        run('createdb', '-h', '127.0.0.1', '-p', str(port), '-U', 'autotrader', 'deploy')
        yield f'postgresql+psycopg://autotrader@127.0.0.1:{port}/deploy', stop, start
    finally:
        subprocess.run(
            as_pg + [str(b / 'pg_ctl'), '-D', f'{d}/data', '-m', 'immediate', 'stop'], capture_output=True, timeout=60
        )
        shutil.rmtree(d, ignore_errors=True)


def test_readiness_follows_the_state_database(trained, pg_cluster, tmp_path, monkeypatch):
    "PostgreSQL stopped: /readyz 503 after 3 heartbeats (the reason says why), /healthz 200, signals still served; started: ready again."
    import uvicorn
    from autotrader.config import load_settings
    from autotrader.deploy.gateway import create_app

    url, stop, start = pg_cluster
    monkeypatch.setenv('AUTOTRADER_ADMIN_TOKEN', TOKEN)
    shutil.copytree(
        trained['dir'],
        tmp_path / 'w',
        ignore=shutil.ignore_patterns('*.log', 'deploy.db*', 'rollout-state.db*', 'manual.db*'),
    )
    st = load_settings(_write_settings(tmp_path / 'w', url, heartbeat_seconds=0.5, routing_poll_seconds=0.5), env={})
    port = free_port()
    base = f'http://127.0.0.1:{port}'
    app = create_app(st, url=base, replica='pg-readiness')
    server = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=port, log_level='warning', lifespan='on'))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        until(lambda: server.started and request(base, 'GET', '/readyz')[0] == 200, 120, 'ready')
        t = time.monotonic()
        stop()
        code, text = until(lambda: (r := request(base, 'GET', '/readyz'))[0] == 503 and r, 60, 'not ready')
        until(lambda: 'autotrader_gateway_ready 0.0' in request(base, 'GET', '/metrics')[1], 30, 'the ready gauge at 0')
        until(
            lambda: 'autotrader_gateway_state_reachable 0.0' in request(base, 'GET', '/metrics')[1],
            30,
            'the state-reachable gauge at 0',
        )
        print(f"\nstate database stopped: /readyz 503 after {time.monotonic() - t:.1f} s: {text}")
        assert 'deployment state unreachable' in json.loads(text)['reason'] and 'postgres' not in text.lower()
        assert request(base, 'GET', '/healthz')[0] == 200  # liveness does not depend on the database
        assert request(base, 'GET', '/v1/signal/BTC-USD')[0] == 200  # the last routing keeps serving
        t = time.monotonic()
        start()
        until(lambda: request(base, 'GET', '/readyz')[0] == 200, 60, 'ready again')
        print(f"started again: ready after {time.monotonic() - t:.1f} s")
        until(lambda: 'autotrader_gateway_ready 1.0' in request(base, 'GET', '/metrics')[1], 30, 'the ready gauge at 1')
        until(
            lambda: 'autotrader_gateway_state_reachable 1.0' in request(base, 'GET', '/metrics')[1],
            30,
            'the state-reachable gauge at 1',
        )
    finally:
        server.should_exit = True
        th.join(timeout=30)


def test_a_canary_of_the_unchanged_champion_under_hostile_traffic_is_promoted(trained, tmp_path, monkeypatch):
    "The twin of the champion as a canary; every tick (10 min of clock) normal GET/POST traffic and hostile POSTs on every instrument."
    from autotrader.config import load_settings
    from autotrader.deploy.controller import RolloutController

    w = World(trained, tmp_path, monkeypatch)
    try:
        new = trained['twin']
        good = _good(w)
        mix = {
            '1e400',
            '-1e400',
            'Infinity',
            'NaN',
            '1e300 (out of range)',
            '10**400 (an integer)',
            'a string',
            'a boolean',
            'a list',
            'nested 10k deep in a feature',
            'wrong feature name',
            'missing features',
            'malformed JSON',
        }
        hostile = [x for x in hostile_requests(good) if x[0] in mix]
        assert len(hostile) == len(mix)
        codes, kinds = {}, set()
        turn = iter(range(10**9))

        def tick(ctl=None):
            "12 GETs and 4 valid POSTs (one per instrument), and 8 hostile POSTs (2 per instrument, the mix in turn)."
            w.traffic()
            for inst in INSTRUMENTS:
                code, _ = request(
                    w.gw.url, 'POST', '/v1/predict', json.dumps({'features': good, 'instrument': inst}).encode()
                )
                codes[code] = codes.get(code, 0) + 1
                for _ in range(2):
                    label, _, path, data, headers, chunked = hostile[next(turn) % len(hostile)]
                    data = data.replace(b'"BTC-USD"', json.dumps(inst).encode())
                    code, _ = request(w.gw.url, 'POST', path, data, headers, chunked)
                    codes[code] = codes.get(code, 0) + 1
                    kinds.add(label)
            w.gw.flush()

        w.walk(60)
        w.t0 = w.clock.now()
        # judged on errors and P&L as always; the p99 limit raised from the test settings' 100 ms, which a busy CI host
        # breaches now and then for any version (latency is tests/test_deploy.py's concern, not this test's)
        st = load_settings(w.settings, overrides={'canary.max_p99_ms': 5000.0}, env={})
        ctl = RolloutController('canary', st, state=w.state, registry=w.reg, clock=w.clock, log=print)
        t = time.perf_counter()
        d = ctl.run(new, tick=tick, poll=600)
        print(
            f"canary under hostile traffic: {d['status']} in {time.perf_counter() - t:.1f} s wall, "
            f"{(w.clock.now() - w.t0) / 3600:.1f} h of clock; answers by code: {codes}"
        )
        log = w.state.audit_log(d['id'])
        assert d['status'] == 'succeeded', log.tail(8)[['action', 'reason']].to_string()
        assert w.reg.champion()['version'] == new
        hostile_n = sum(v for c, v in codes.items() if 400 <= c < 500)
        assert kinds == mix and hostile_n >= codes[200] and set(codes) <= {200, 400, 404, 413, 422}, (
            codes,
            mix - kinds,
        )
        s = w.state.request_stats(versions=[new])
        assert int(s.errors.sum()) == 0 and int(s.requests.sum()) > 0, s
    finally:
        w.close()
