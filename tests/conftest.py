import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # import the repo's autotrader without installing it


def _coverage_of_children():
    """Coverage of the processes the tests start (CLI, papermill kernels, gateways): coverage's `patch = subprocess`
    hands them its configuration; COVERAGE_FILE makes their data files land beside this process's (which pytest-cov
    combines at the end), whatever their working directory."""
    try:
        import coverage
    except ImportError:
        return
    cov = coverage.Coverage.current()
    if cov is not None:
        os.environ.setdefault('COVERAGE_FILE', os.path.abspath(cov.config.data_file))


_coverage_of_children()

from champion import Champion, copy_champion, shared_champion  # noqa: E402  (tests/ is on sys.path: rootdir conftest)


# Seconds per test file in a serial run before the speed-up (tests/ at d840c0b, `--durations=80`, on a 2-core machine
# shared with other jobs, about 3.8 times slower than CI; test_airflow, test_monitor_prometheus and test_drills were not
# measured: guesses). Only the order matters: pytest-xdist hands out work in collection order, so the longest files
# start first and the short ones fill in at the end (longest-processing-time-first scheduling).
COST = {
    'test_train_pipeline.py': 1814,
    'test_deploy.py': 630,
    'test_run_all.py': 509,
    'test_airflow.py': 400,
    'test_schedule.py': 355,
    'test_ingest.py': 262,
    'test_install.py': 231,
    'test_train_registry.py': 225,
    'test_drills.py': 200,
    'test_runner.py': 174,
    'test_monitor_health.py': 107,
    'test_monitor_prometheus.py': 100,
    'test_monitor_alerts.py': 79,
    'test_jupyterlab.py': 78,
    'test_docs.py': 75,
    'test_features.py': 43,
    'test_brokers.py': 33,
    'test_reports_site.py': 26,
    'test_false_promotion.py': 25,
    'test_train_splits.py': 23,
}


def pytest_collection_modifyitems(config, items):
    """For pytest-xdist (--dist loadgroup): tests that share a module-scoped fixture stay on one worker (their module's
    group), so the fixture is set up once; the tests of the session's `mlflow_server` share a worker (group
    'mlflow_server'), so one server starts; other tests go wherever a worker is free. The costliest files first."""
    for item in items:
        if item.get_closest_marker('xdist_group'):
            continue
        defs = getattr(getattr(item, '_fixtureinfo', None), 'name2fixturedefs', {})
        if 'mlflow_server' in defs or 'mlflow_server_process' in defs:
            group = 'mlflow_server'
        elif any(d and d[-1].scope in ('module', 'package', 'class') for d in defs.values()):
            group = item.module.__name__
        else:
            continue
        item.add_marker(pytest.mark.xdist_group(group))
    if getattr(config.option, 'loadgroup', False):  # on an xdist worker under --dist loadgroup
        _group_node_ids(items)
    items.sort(key=lambda i: -COST.get(Path(str(i.path)).name, 0))


def _group_node_ids(items):
    """Suffix each grouped test's node id with `@group`, which is how xdist's loadgroup scheduler sees groups. xdist
    3.8 sets `item._nodeid`, which pytest 9 no longer reads (the id is `item._id`), so without this every group was
    split across the workers and module-scoped fixtures were built on both (measured: the session's `run all` twice)."""
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = {
            str(m.args[0] if m.args else m.kwargs.get('name', 'default')) for m in item.iter_markers('xdist_group')
        }
        if names and '@' not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(sorted(names))}")


def _shared_root(tmp_path_factory) -> Path:
    "A folder every xdist worker of this run sees (the run's base temp folder); without xdist, the base temp folder."
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


@pytest.fixture(scope='session')
def run_all_site(tmp_path_factory) -> dict:
    """`autotrader run all` once for the run, as a user runs it in a fresh folder (150 days of history, 4 trials), then
    a second, up-to-date `autotrader run ingest`: {'dir', 'out' (run all's output), 'again' (the second ingest's)}.
    Built by the first worker that needs it (a file lock in the run's shared folder), reused by the others; a failed
    build is raised again, not retried. Read-only: a test that changes it works on a copy. Its tests carry
    `pytest.mark.xdist_group('run_all')`, so one worker usually does both."""
    import json
    import traceback

    from champion import _locked
    from inprocess import autotrader_cli

    root = _shared_root(tmp_path_factory)
    d, done, failed = root / 'run-all', root / 'run-all.json', root / 'run-all-failed.txt'
    with _locked(root / 'run-all.lock'):
        if failed.exists():
            raise RuntimeError(f'the session `run all` failed:\n{failed.read_text()}')
        if not done.exists():
            try:
                d.mkdir(parents=True, exist_ok=True)
                (d / 'settings.ini').write_text('[data]\nlookback_days = 150\n[train]\nn_trials = 4\n')
                r = autotrader_cli('run', 'all', '--no-progress', cwd=d)
                assert r.returncode == 0, r.stdout + r.stderr
                # right after; again if a bar closed meanwhile (run all takes minutes on a busy host)
                for _ in range(3):
                    again = autotrader_cli('run', 'ingest', '--no-progress', cwd=d)
                    assert again.returncode == 0, again.stdout + again.stderr
                    if 'up to date' in again.stdout:
                        break
            except BaseException as e:
                failed.write_text(''.join(traceback.format_exception(e))[-6000:])
                raise
            done.write_text(json.dumps(dict(out=r.stdout, again=again.stdout)))
    return dict(dir=d, **json.loads(done.read_text()))


@pytest.fixture(scope='session')
def champion(tmp_path_factory) -> Champion:
    """One trained, evaluated and promoted model for the whole run (see tests/champion.py): yields a `Champion` with
    `dir` (holds settings.ini; data in dir/autotrader-data), `settings_path`, `settings`, `data_dir`, `version` ('1',
    alias `champion`) and `instruments`. Read-only: a test that trains, registers, promotes or deploys takes
    `champion_copy` (or `copy_champion(champion, folder)` for a module-scoped copy)."""
    return shared_champion(_shared_root(tmp_path_factory))


@pytest.fixture
def champion_copy(champion, tmp_path) -> Champion:
    "A private copy of `champion` under tmp_path/champion (copied in well under a second), free to change."
    return copy_champion(champion, tmp_path / 'champion')


@pytest.fixture(scope='session')
def mlflow_server_process(tmp_path_factory):
    """Start the session's `mlflow server` and return at once (process, uri, folder): a fixture that asks for this one
    lets the server boot (tens of seconds) while its first tests run; `mlflow_server` waits until it answers."""
    from local_servers import start_mlflow_server

    gen = start_mlflow_server(tmp_path_factory)
    yield next(gen)
    gen.close()


@pytest.fixture(scope='session')
def mlflow_server(mlflow_server_process):
    """One real `mlflow server` for the run (SQLite backend, proxied local artifacts, no auth) on 127.0.0.1, healthy;
    yields `MlflowServer(uri, artifacts)`. Its tests share one xdist worker (group 'mlflow_server'), so it starts once."""
    from local_servers import MlflowServer, wait_healthy

    proc, uri, d = mlflow_server_process
    wait_healthy(proc, uri, d)
    return MlflowServer(uri, d / 'artifacts')


@pytest.fixture(scope='session')
def moto_s3():
    "A real moto S3 server on 127.0.0.1 (own thread) with fake AWS credentials in the environment; yields its endpoint URL."
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        for var in (
            'AWS_PROFILE',
            'AWS_SESSION_TOKEN',
            'AWS_SECURITY_TOKEN',
            'AWS_ENDPOINT_URL',
            'AWS_ENDPOINT_URL_S3',
        ):
            mp.delenv(var, raising=False)
        mp.setenv('AWS_ACCESS_KEY_ID', 'testing')
        mp.setenv('AWS_SECRET_ACCESS_KEY', 'testing')
        mp.setenv('AWS_DEFAULT_REGION', 'us-east-1')
        mp.setenv('NO_PROXY', '127.0.0.1,localhost')
        server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            with socket.create_connection((host, port), timeout=5):
                pass
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
    for k in [k for k in os.environ if k.startswith('AUTOTRADER')]:
        monkeypatch.delenv(k)
    return tmp_path
