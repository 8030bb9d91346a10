import os, socket, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))   # import the repo's autotrader without installing it


@pytest.fixture(scope='session')
def moto_s3():
    "A real moto S3 server on 127.0.0.1 (own thread) with fake AWS credentials in the environment; yields its endpoint URL."
    from moto.server import ThreadedMotoServer
    with pytest.MonkeyPatch.context() as mp:
        for var in ('AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3'):
            mp.delenv(var, raising=False)
        mp.setenv('AWS_ACCESS_KEY_ID', 'testing')
        mp.setenv('AWS_SECRET_ACCESS_KEY', 'testing')
        mp.setenv('AWS_DEFAULT_REGION', 'us-east-1')
        mp.setenv('NO_PROXY', '127.0.0.1,localhost')
        server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            with socket.create_connection((host, port), timeout=5): pass
            yield f'http://{host}:{port}'
        finally:
            server.stop()


@pytest.fixture(scope='session')
def empty_settings(tmp_path_factory):
    "An empty settings.ini: `load_settings(empty_settings, overrides=…, env={})` sees embedded defaults + overrides only."
    p = tmp_path_factory.mktemp('settings') / 'settings.ini'
    p.write_text('')
    return p


@pytest.fixture
def hermetic(monkeypatch, tmp_path):
    "cwd is tmp_path (no ./settings.ini is picked up) and no AUTOTRADER* variable from the outside."
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith('AUTOTRADER')]: monkeypatch.delenv(k)
    return tmp_path
