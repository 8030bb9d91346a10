"""TLS and authentication inside the private network, as production runs the servers (ops/terraform: the load
balancer encrypts to its targets, MLflow needs a user): a real `autotrader serve` answering HTTPS with a certificate
the client verifies, and with a self-signed one made at start; a real `autotrader tracking-server` (MLflow's basic-auth
app over TLS) that refuses anonymous calls and plain HTTP, and through which the kit logs, registers and loads a model
with credentials from the environment only."""

import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from local_servers import free_port, stop_group

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group('tls')


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(('AUTOTRADER', 'MLFLOW_'))}
    env.update(
        AUTOTRADER__DATA__DIR=str(tmp_path / 'data'),
        MLFLOW_DISABLE_TELEMETRY='true',
        NO_PROXY='127.0.0.1,localhost',
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
        **extra,
    )
    return env


def _start(args, env, cwd, log):
    return subprocess.Popen(
        [sys.executable, '-m', 'autotrader.cli', *args],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait(url, ctx, p, log, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            pytest.fail(f'exited {p.returncode}: {Path(log.name).read_text()[-3000:]}')
        try:
            with urllib.request.urlopen(url, timeout=3, context=ctx) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            time.sleep(0.3)
    pytest.fail(f'{url} did not answer in {timeout} s: {Path(log.name).read_text()[-3000:]}')


def _plain_http_refused(url):
    "A plain-HTTP request to a TLS port gets no HTTP answer."
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return False, r.status
    except urllib.error.HTTPError as e:
        return False, e.code
    except OSError as e:
        return True, e


def test_gateway_serves_https_with_the_operators_certificate_or_a_self_signed_one(tmp_path):
    from autotrader.tls import self_signed

    cert, key = self_signed(tmp_path / 'tls')
    port = free_port()
    log = open(tmp_path / 'gateway.log', 'w')
    env = _env(tmp_path, AUTOTRADER__DEPLOY__TLS_CERTFILE=str(cert), AUTOTRADER__DEPLOY__TLS_KEYFILE=str(key))
    p = _start(['serve', '--port', str(port)], env, tmp_path, log)
    try:
        verified = ssl.create_default_context(cafile=str(cert))  # hostname 127.0.0.1 checked against the certificate
        assert _wait(f'https://127.0.0.1:{port}/healthz', verified, p, log) == 200
        refused, why = _plain_http_refused(f'http://127.0.0.1:{port}/healthz')
        assert refused, f'plain HTTP answered {why}'
        with pytest.raises(urllib.error.URLError, match='CERTIFICATE_VERIFY_FAILED'):  # not trusted by default
            urllib.request.urlopen(f'https://127.0.0.1:{port}/healthz', timeout=5)
    finally:
        stop_group(p, timeout=40)
        log.close()
    out = (tmp_path / 'gateway.log').read_text()
    assert f'listening on https://127.0.0.1:{port}' in out and f'TLS: {cert}' in out, out

    port = free_port()
    log = open(tmp_path / 'gateway2.log', 'w')
    p = _start(
        ['serve', '--port', str(port)], _env(tmp_path, AUTOTRADER__DEPLOY__TLS_SELF_SIGNED='true'), tmp_path, log
    )
    try:
        ctx = ssl._create_unverified_context()  # as a load balancer that does not verify its targets
        assert _wait(f'https://127.0.0.1:{port}/healthz', ctx, p, log) == 200
        assert _wait(f'https://127.0.0.1:{port}/readyz', ctx, p, log) == 503  # nothing deployed: alive, not ready
    finally:
        stop_group(p, timeout=40)
        log.close()
    assert 'TLS: a self-signed certificate made at start' in (tmp_path / 'gateway2.log').read_text()

    r = subprocess.run(
        [sys.executable, '-m', 'autotrader.cli', 'serve', '--port', str(free_port())],
        env=_env(tmp_path, AUTOTRADER__DEPLOY__TLS_CERTFILE=str(cert)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert '[deploy] tls_certfile is set but [deploy] tls_keyfile is not' in r.stderr


@pytest.fixture(scope='module')
def tracking_server(tmp_path_factory):
    from autotrader.tls import self_signed

    d = tmp_path_factory.mktemp('tracking')
    cert, key = self_signed(d / 'tls')
    port, password = free_port(), 'admin-' + os.urandom(8).hex()
    log = open(d / 'server.log', 'w')
    args = [
        'tracking-server',
        '--backend-store-uri',
        f"sqlite:///{d / 'backend.db'}",
        '--auth-db-uri',
        f"sqlite:///{d / 'auth.db'}",
        '--artifacts-destination',
        str(d / 'artifacts'),
        '--port',
        str(port),
        '--workers',
        '1',
        '--tls-certfile',
        str(cert),
        '--tls-keyfile',
        str(key),
    ]
    p = _start(args, _env(d, MLFLOW_AUTH_ADMIN_PASSWORD=password, MLFLOW_FLASK_SERVER_SECRET_KEY='k' * 32), d, log)
    uri = f'https://127.0.0.1:{port}'
    try:
        assert _wait(f'{uri}/health', ssl.create_default_context(cafile=str(cert)), p, log) == 200
        yield uri, cert, password, d
    finally:
        stop_group(p, timeout=40)
        log.close()


def test_tracking_server_refuses_anonymous_calls_and_plain_http(tracking_server):
    uri, cert, password, d = tracking_server
    ctx = ssl.create_default_context(cafile=str(cert))
    api = f'{uri}/api/2.0/mlflow/experiments/search?max_results=1'
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(api, timeout=10, context=ctx)
    assert e.value.code == 401
    refused, why = _plain_http_refused(api.replace('https://', 'http://'))
    assert refused, f'plain HTTP answered {why}'
    log = (d / 'server.log').read_text()
    assert password not in log  # the admin password is never printed
    assert 'authentication on, TLS on' in log


def test_the_kit_logs_registers_and_loads_a_model_through_tls_and_authentication(tracking_server, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    from autotrader.train.registry import ModelRegistry

    uri, cert, password, d = tracking_server
    X = pd.DataFrame({'a': [0.0, 1.0, 2.0, 3.0], 'b': [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(X, [0, 1, 0, 1])
    reg = ModelRegistry(uri, model_name='tls-test', experiment='tls-test')
    monkeypatch.setenv('MLFLOW_TRACKING_SERVER_CERT_PATH', str(cert))
    monkeypatch.setenv('MLFLOW_TRACKING_USERNAME', 'admin')
    monkeypatch.setenv('MLFLOW_TRACKING_PASSWORD', 'wrong')
    with pytest.raises(Exception, match='401|Unauthorized|credentials'):
        reg.experiment_id()
    monkeypatch.setenv('MLFLOW_TRACKING_PASSWORD', password)
    run = reg.log_run({'C': 1.0}, {'test_sharpe': 0.5}, model=model, input_example=X.head(2))
    version = reg.register(run, alias='champion')
    assert reg.version('champion')['version'] == version
    loaded = reg.load_model('champion')
    probs = loaded.predict_proba(X) if hasattr(loaded, 'predict_proba') else loaded.predict(X)
    assert len(probs) == len(X)
    assert list((d / 'artifacts').rglob('*'))  # artifacts went through the server, over TLS
