"""The exported Airflow DAGs in a real Apache Airflow 3 (its own virtual environment, installed by .ci/run into
.venv-airflow; $AUTOTRADER_AIRFLOW names another `airflow` executable).

`test_live_airflow`: Airflow as a running system — a PostgreSQL metadata database (Debian's postgresql, a throwaway
cluster), the scheduler with the LocalExecutor, the DAG processor and the API server on free loopback ports. The DAG
files are exported in one folder and run, unchanged, by workers whose environment points at another folder
(`AUTOTRADER_HOME`, `autotrader` on PATH): no path of the exporting machine is in them. DAGs are unpaused and a run is
triggered through the REST API; the scheduled train run fails twice and is retried with growing delays (the delays
Airflow computes are printed), then train → evaluate → rollout chain as the schedules say; a run for a past data
interval ingests that interval; every file the kit writes is readable by other users (0644).

`test_ingest_dag_runs_end_to_end_like_autotrader_run_ingest`: `airflow dags test` of the ingest DAG leaves the same
report files as `autotrader run ingest`."""

import glob
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from local_servers import free_port

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = Path(os.environ.get('AUTOTRADER_AIRFLOW') or ROOT / '.venv-airflow' / 'bin' / 'airflow')
pytestmark = [
    pytest.mark.skipif(not AIRFLOW.exists(), reason=f'no Apache Airflow at {AIRFLOW} (bash .ci/run installs it)'),
    pytest.mark.xdist_group('airflow'),
]  # one worker: the module's fixture, and no two Airflows at once
KS = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}
KIT_BIN = Path(sys.executable).parent  # the kit's environment: `autotrader` is here (the worker's PATH)
RETRY_DELAY = 2  # seconds: [pipeline_train] retry_delay in the test's settings


def _clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(('AUTOTRADER', 'AIRFLOW', 'VIRTUAL_ENV'))}


def autotrader(*args, cwd, timeout=600):
    env = _clean_env()
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))
    return subprocess.run(
        [sys.executable, '-m', 'autotrader.cli', *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _notebook(path, code):
    p = new_code_cell('run_context = None')
    p.metadata['tags'] = ['parameters']
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[p, new_code_cell(code)], metadata=KS), path)


def _world_readable(p: Path) -> bool:
    return stat.S_IMODE(p.stat().st_mode) & 0o044 == 0o044


# ---------------------------------------------------------------- PostgreSQL, a throwaway cluster


def _pg_bin():
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'))
    return Path(found[-1]).parent if found else None


@pytest.fixture
def postgres():
    "A PostgreSQL cluster on a free loopback port with an empty database `airflow` (run as `postgres` when we are root)."
    b = _pg_bin()
    if b is None:
        pytest.skip('PostgreSQL is not installed (apt-get install postgresql; .ci/run does)')
    d = Path(tempfile.mkdtemp(prefix='airflow-pg-'))
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
        run('createdb', '-h', '127.0.0.1', '-p', str(port), '-U', 'autotrader', 'airflow')
        yield f'postgresql+psycopg2://autotrader@127.0.0.1:{port}/airflow'
    finally:
        subprocess.run(
            as_pg + [str(b / 'pg_ctl'), '-D', f'{d}/data', '-m', 'immediate', 'stop'], capture_output=True, timeout=60
        )
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- the kit's folders and the DAGs

_CTX = 'from autotrader.pipelines.context import RunContext\nctx = RunContext.from_param(run_context)\n'
STAND_INS = {  # train fails twice, then succeeds; evaluate promotes; rollout records that it ran
    'train': _CTX + 'from pathlib import Path\n'
    'f = Path("train-attempts.txt"); k = int(f.read_text()) + 1 if f.exists() else 1; f.write_text(str(k))\n'
    'if k <= 2: raise RuntimeError(f"attempt {k} fails on purpose")\nctx.record(attempt=k)',
    'evaluate': _CTX + 'ctx.record(promote=True)',
    'rollout': _CTX + 'ctx.record(rolled_out=True)',
}
SETTINGS = f"""[data]
dir = data
lookback_days = 2
[pipeline_train]
notebook = stand-ins/train.ipynb
retries = 2
retry_delay = {RETRY_DELAY}
[pipeline_evaluate]
notebook = stand-ins/evaluate.ipynb
retries = 0
[pipeline_rollout]
notebook = stand-ins/rollout.ipynb
"""


@pytest.fixture(scope='module')
def kit(tmp_path_factory):
    """The operator's folder (settings.ini with relative paths, stand-in notebooks) where the DAGs are exported, and
    a copy of it elsewhere: the folder the Airflow workers use. Folders 0755 so that other users may enter them."""
    base = Path(tempfile.mkdtemp(prefix='airflow-kit-'))
    os.chmod(base, 0o755)
    exported_in, home, dags = base / 'exported-in', base / 'worker-home', base / 'dags'
    exported_in.mkdir()
    (exported_in / 'settings.ini').write_text(SETTINGS)
    for n, code in STAND_INS.items():
        _notebook(exported_in / 'stand-ins' / f'{n}.ipynb', code)
    old = os.umask(0o022)
    try:
        r = autotrader('schedule', 'airflow', '--out', str(dags), cwd=exported_in)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    shutil.copytree(exported_in, home)
    for d in (exported_in, home, dags, *home.rglob('*')):
        if d.is_dir():
            os.chmod(d, 0o777 if d == home else 0o755)
    yield dict(exported_in=exported_in, home=home, dags=dags)
    shutil.rmtree(base, ignore_errors=True)


def test_exported_dags_hold_no_path_of_the_exporting_machine_and_parse(kit, tmp_path):
    dags = kit['dags']
    names = sorted(p.name for p in dags.glob('*.py'))
    assert names == [
        'autotrader_evaluate.py',
        'autotrader_health.py',
        'autotrader_ingest.py',
        'autotrader_rollout.py',
        'autotrader_train.py',
    ]
    for p in dags.glob('*.py'):
        src = p.read_text()
        for path in (kit['exported_in'], ROOT, sys.prefix, KIT_BIN):
            assert str(path) not in src, f'{p.name} holds {path}'
        assert 'from airflow.sdk import DAG' in src and 'retry_exponential_backoff=2.0' in src and 'amazon' not in src
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, oct(p.stat().st_mode)
    if os.geteuid() == 0:  # another user reads them
        r = subprocess.run(
            ['runuser', '-u', 'nobody', '--', 'cat', str(dags / 'autotrader_ingest.py')], capture_output=True, text=True
        )
        assert r.returncode == 0 and 'autotrader_ingest' in r.stdout, r.stderr
    ingest = (dags / 'autotrader_ingest.py').read_text()
    assert (
        "CronDataIntervalTimetable('0 2 * * *', timezone='UTC')" in ingest and 'end={{ data_interval_end | ts' in ingest
    )

    env = {
        **_clean_env(),
        'AIRFLOW_HOME': str(tmp_path),
        'AIRFLOW__CORE__DAGS_FOLDER': str(dags),
        'AIRFLOW__CORE__LOAD_EXAMPLES': 'False',
        'PYTHONWARNINGS': 'ignore',
    }
    r = subprocess.run(
        [str(AIRFLOW), 'db', 'migrate'], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = subprocess.run(
        [str(AIRFLOW), 'dags', 'list-import-errors', '--local', '-o', 'json'],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stdout + r.stderr
    # the check can fail: a broken DAG file is reported
    broken = tmp_path / 'broken'
    shutil.copytree(dags, broken)
    (broken / 'broken_dag.py').write_text('import no_such_module  # an airflow dag\n')
    r = subprocess.run(
        [str(AIRFLOW), 'dags', 'list-import-errors', '--local', '-o', 'json'],
        env={**env, 'AIRFLOW__CORE__DAGS_FOLDER': str(broken)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and 'no_such_module' in r.stdout


def test_ecs_mode_dags_parse_with_the_amazon_provider(tmp_path):
    """[airflow] run_with = ecs (production): the DAGs import the Amazon provider's EcsRunTaskOperator, and Airflow
    builds every task from them (an argument the operator does not take fails the parse)."""
    r = subprocess.run(
        [str(AIRFLOW.parent / 'python'), '-c', 'import airflow.providers.amazon.aws.operators.ecs'],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        pytest.skip(
            'the Amazon provider is not installed in the Airflow environment (.ci/run installs apache-airflow[amazon])'
        )
    exported = tmp_path / 'exported'
    exported.mkdir()
    ecs = {
        'RUN_WITH': 'ecs',
        'ECS_CLUSTER': 'autotrader-prod',
        'ECS_TASK_DEFINITION': 'autotrader-prod-runner',
        'ECS_CONTAINER': 'runner',
        'ECS_SUBNETS': 'subnet-0aaa,subnet-0bbb',
        'ECS_SECURITY_GROUPS': 'sg-0ccc',
        'ECS_LOG_GROUP': '/autotrader/autotrader-prod/runner',
        'ECS_LOG_STREAM_PREFIX': 'runner',
        'REGION': 'eu-west-1',
    }
    (exported / 'settings.ini').write_text('[airflow]\n' + ''.join(f'{k.lower()} = {v}\n' for k, v in ecs.items()))
    r = autotrader('schedule', 'airflow', '--out', str(tmp_path / 'dags'), cwd=exported)
    assert r.returncode == 0, r.stderr
    src = (tmp_path / 'dags' / 'autotrader_evaluate.py').read_text()
    assert (
        'EcsRunTaskOperator' in src
        and 'BashOperator' not in src
        and "'autotrader.ops.airflow_dags', 'run', 'evaluate'" in src
    )
    env = {
        **_clean_env(),
        'AIRFLOW_HOME': str(tmp_path / 'home'),
        'AIRFLOW__CORE__DAGS_FOLDER': str(tmp_path / 'dags'),
        'AIRFLOW__CORE__LOAD_EXAMPLES': 'False',
        'PYTHONWARNINGS': 'ignore',
    }
    for args in (['db', 'migrate'], ['dags', 'list-import-errors', '--local', '-o', 'json']):
        r = subprocess.run([str(AIRFLOW), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [], r.stdout


# ---------------------------------------------------------------- Airflow as a running system


class Airflow:
    "Scheduler (LocalExecutor), DAG processor and API server of one Airflow home, and a client of its REST API."

    def __init__(self, home, dags, db_url, worker_env):
        self.home, self.port = Path(home), free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.env = {
            **_clean_env(),
            **worker_env,
            'AIRFLOW_HOME': str(home),
            'AIRFLOW__CORE__DAGS_FOLDER': str(dags),
            'AIRFLOW__CORE__LOAD_EXAMPLES': 'False',
            'AIRFLOW__CORE__EXECUTOR': 'LocalExecutor',
            'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN': db_url,
            'AIRFLOW__CORE__EXECUTION_API_SERVER_URL': f'{self.url}/execution/',
            'AIRFLOW__API__HOST': '127.0.0.1',
            'AIRFLOW__API__PORT': str(self.port),
            'AIRFLOW__API__WORKERS': '1',
            'AIRFLOW__API__BASE_URL': self.url,
            'AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS': 'True',
            'AIRFLOW__API_AUTH__JWT_SECRET': secrets.token_hex(16),
            'AIRFLOW__CORE__PARALLELISM': '4',
            'AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL': '5',
            'AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC': '1',
            'PYTHONWARNINGS': 'ignore',
        }
        self.procs, self.token = [], None

    def cli(self, *args, timeout=300):
        return subprocess.run(
            [str(AIRFLOW), *args], env=self.env, cwd=self.home, capture_output=True, text=True, timeout=timeout
        )

    def start(self):
        r = self.cli('db', 'migrate')
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        for component in (['api-server', '--port', str(self.port)], ['scheduler'], ['dag-processor']):
            log = open(self.home / f'{component[0]}.log', 'w')
            self.procs.append(
                subprocess.Popen(
                    [str(AIRFLOW), *component],
                    env=self.env,
                    cwd=self.home,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        self.wait(lambda: self._token(), 'the API server answers', 120)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def logs(self):
        return '\n'.join(f'--- {f.name}\n' + f.read_text()[-3000:] for f in sorted(self.home.glob('*.log')))

    def _token(self):
        try:
            with urllib.request.urlopen(f'{self.url}/auth/token', timeout=5) as r:
                self.token = json.load(r)['access_token']
            return True
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def api(self, method, path, body=None, attempts=4):
        "A REST API call; a busy API server (2 cores shared with the scheduler and the tasks) gets a few tries."
        for attempt in range(attempts):
            req = urllib.request.Request(
                f'{self.url}/api/v2{path}',
                method=method,
                data=None if body is None else json.dumps(body).encode(),
                headers={'Authorization': f'Bearer {self.token}', 'Content-Type': 'application/json'},
            )
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    return json.load(r)
            except urllib.error.HTTPError as e:
                if e.code == 409 and method == 'POST' and attempt:
                    return None  # created by the try that timed out
                raise AssertionError(f'{method} {path}: {e.code} {e.read().decode()[:1000]}') from None
            except (TimeoutError, urllib.error.URLError, ConnectionError):
                if attempt == attempts - 1:
                    raise

    def wait(self, cond, what, timeout):
        "Wait until `cond()` is truthy (polled every second; `timeout` only stops a hung system)."
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                assert p.poll() is None, f'an Airflow component exited while waiting for {what}:\n{self.logs()}'
            v = cond()
            if v:
                return v
            time.sleep(1)
        raise AssertionError(f'timed out waiting for {what}\n{self.logs()}')

    def runs(self, dag_id):
        return self.api('GET', f'/dags/{dag_id}/dagRuns?order_by=logical_date')['dag_runs']


def _tries(af, dag_id, run_id, task='run'):
    return sorted(
        af.api('GET', f'/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task}/tries')['task_instances'],
        key=lambda t: t['try_number'],
    )


_NEXT_RETRY = """
import json, logging, sys
from datetime import datetime, timedelta
from types import SimpleNamespace
from airflow.models.taskinstance import TaskInstance
dag_id, task_id, logical, delay, mult, tries = sys.argv[1:4] + [float(sys.argv[4]), float(sys.argv[5]), json.loads(sys.argv[6])]
end, out = datetime(2000, 1, 1), []
for t in tries:   # the attributes TaskInstance.next_retry_datetime reads
    ti = SimpleNamespace(retry_delay_override=None, end_date=end, try_number=t, dag_id=dag_id, task_id=task_id, log=logging.getLogger('x'),
                         logical_date=datetime.fromisoformat(logical), task=SimpleNamespace(retry_delay=timedelta(seconds=delay),
                         retry_exponential_backoff=mult, max_retry_delay=None))
    out.append((TaskInstance.next_retry_datetime(ti) - end).total_seconds())
print(json.dumps(out))
"""


def _airflow_delays(dag_id, task_id, logical_date, tries, retry_delay, multiplier):
    "The retry delays Airflow computes (its own TaskInstance.next_retry_datetime, in its environment), one per failed try."
    r = subprocess.run(
        [
            str(AIRFLOW.parent / 'python'),
            '-c',
            _NEXT_RETRY,
            dag_id,
            task_id,
            logical_date,
            str(retry_delay),
            str(multiplier),
            json.dumps(tries),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**_clean_env(), 'PYTHONWARNINGS': 'ignore'},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _t(s):
    return datetime.fromisoformat(s.replace('Z', '+00:00'))


@pytest.fixture
def airflow_system(kit, postgres, tmp_path_factory):
    "The running system, stopped as soon as test_live_airflow ends (function scope: nothing runs during the other tests)."
    home = tmp_path_factory.mktemp('airflow-home')
    worker = {
        'AUTOTRADER_HOME': str(kit['home']),
        'PATH': f"{KIT_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
    }
    af = Airflow(home, kit['dags'], postgres, worker)
    t0 = time.monotonic()
    try:
        af.start()
        print(f'\nlive Airflow: db migrate (PostgreSQL) and the three components up in {time.monotonic() - t0:.0f} s')
        yield af
    finally:
        af.stop()
        print(f'\nlive Airflow: {time.monotonic() - t0:.0f} s from `db migrate` to stopped')


def test_live_airflow(airflow_system, kit):
    af, home = airflow_system, kit['home']
    t0 = time.monotonic()
    ids = ['autotrader_evaluate', 'autotrader_health', 'autotrader_ingest', 'autotrader_rollout', 'autotrader_train']
    af.wait(
        lambda: sorted(d['dag_id'] for d in af.api('GET', '/dags?tags=autotrader')['dags']) == ids,
        'the DAG processor to parse the DAGs',
        180,
    )
    print(f'live Airflow: DAGs parsed in {time.monotonic() - t0:.0f} s')
    assert af.api('GET', '/importErrors')['import_errors'] == []

    # unpause: the scheduler starts the latest scheduled interval of ingest and train at once (catchup is off)
    for d in ('autotrader_ingest', 'autotrader_train', 'autotrader_evaluate', 'autotrader_rollout'):
        assert af.api('PATCH', f'/dags/{d}', {'is_paused': False})['is_paused'] is False
    # and a run for a past data interval, through the REST API
    past = af.api(
        'POST',
        '/dags/autotrader_ingest/dagRuns',
        {
            'logical_date': '2024-03-01T02:00:00Z',
            'dag_run_id': 'past-interval',
            'data_interval_start': '2024-03-01T02:00:00Z',
            'data_interval_end': '2024-03-02T02:00:00Z',
        },
    )
    past = past or af.api('GET', '/dags/autotrader_ingest/dagRuns/past-interval')
    assert past['run_type'] == 'manual'

    done = lambda d, n=1: (
        lambda: (lambda rs: rs if len(rs) >= n and all(r['state'] in ('success', 'failed') for r in rs) else None)(
            af.runs(d)
        )
    )
    ingest_runs = af.wait(done('autotrader_ingest', 2), 'two ingest runs', 600)
    train_runs = af.wait(done('autotrader_train'), 'the train run', 600)
    evaluate_runs = af.wait(done('autotrader_evaluate'), 'evaluate, triggered by train', 300)
    rollout_runs = af.wait(done('autotrader_rollout'), 'rollout, triggered when evaluate promoted', 300)
    print(f'\nlive Airflow: DAGs parsed → every run finished in {time.monotonic() - t0:.0f} s')

    # every run succeeded; train → evaluate → rollout as the schedules say
    for rs in (ingest_runs, train_runs, evaluate_runs, rollout_runs):
        assert [r['state'] for r in rs] == ['success'] * len(rs), (rs, af.logs())
    assert [r['run_type'] for r in train_runs] == ['scheduled']
    assert [r['run_type'] for r in evaluate_runs] == [r['run_type'] for r in rollout_runs] == ['operator_triggered']
    assert len(evaluate_runs) == len(rollout_runs) == 1

    # the train task failed twice and was retried with growing delays
    tr = train_runs[0]
    tries = _tries(af, 'autotrader_train', tr['dag_run_id'])
    assert [t['state'] for t in tries] == ['failed', 'failed', 'success'], tries
    print(f'train retries (retry_delay {RETRY_DELAY} s, retry_exponential_backoff 2.0):')
    computed = _airflow_delays(
        'autotrader_train',
        'run',
        _t(tr['logical_date']).isoformat(),
        [t['try_number'] for t in tries[:-1]],
        RETRY_DELAY,
        2.0,
    )
    for (a, b), delay in zip(zip(tries, tries[1:]), computed):
        waited = (_t(b['start_date']) - _t(a['end_date'])).total_seconds()
        print(
            f"  try {a['try_number']} failed → try {b['try_number']}: Airflow's delay {delay:g} s "
            f"(base {RETRY_DELAY} × 2^{a['try_number'] - 1} = {RETRY_DELAY * 2 ** (a['try_number'] - 1)} s, plus its jitter), waited {waited:.1f} s"
        )
        assert waited >= delay - 0.5, (waited, delay)  # Airflow never starts a retry before its delay
    assert computed[0] >= RETRY_DELAY and computed[1] >= 2 * RETRY_DELAY and computed[1] > computed[0], computed
    ingest_delays = _airflow_delays('autotrader_ingest', 'run', '2024-03-01T02:00:00+00:00', [1, 2, 3], 300, 2.0)
    print(f"  (ingest's defaults, retry_delay 300 s: {', '.join(f'{d:g}' for d in ingest_delays)} s)")
    assert ingest_delays[0] < ingest_delays[1] < ingest_delays[2]
    assert (home / 'train-attempts.txt').read_text() == '3'

    # reports are written in the workers' folder (not the one the DAGs were exported in), readable by other users
    for name, n in (('ingest', 2), ('train', 3), ('evaluate', 1), ('rollout', 1)):
        records = sorted((home / 'reports' / name).glob('*/run.json'))
        assert len(records) == n, (name, records)
        for rec in records:
            for f in rec.parent.iterdir():
                assert _world_readable(f), (f, oct(f.stat().st_mode))
    assert not (kit['exported_in'] / 'reports').exists() and not (kit['exported_in'] / 'data').exists()
    assert [json.loads(p.read_text())['status'] for p in sorted((home / 'reports' / 'train').glob('*/run.json'))] == [
        'failed',
        'failed',
        'ok',
    ]
    assert (
        json.loads(sorted((home / 'reports' / 'evaluate').glob('*/run.json'))[0].read_text())['metrics']['promote']
        is True
    )

    # the run for the past interval ingested exactly that interval; the scheduled one ended at its own interval's end
    runs = {r['dag_run_id']: r for r in ingest_runs}
    sched = next(r for r in ingest_runs if r['run_type'] == 'scheduled')
    params = {p.parent.name: json.loads(p.read_text()) for p in (home / 'reports' / 'ingest').glob('*/run.json')}
    by_start = {json.dumps(v['parameters'].get('start')): v for v in params.values()}
    past_rec = by_start[json.dumps('2024-03-01T02:00:00+00:00')]
    assert past_rec['parameters']['end'] == '2024-03-02T02:00:00+00:00' and past_rec['parameters']['backfill'] is True
    assert past_rec['status'] == 'ok' and past_rec['metrics']['rows_clean'] > 0
    sched_rec = by_start[json.dumps(None)]  # the first scheduled run: from [data] lookback_days
    assert _t(sched_rec['parameters']['end']) == _t(sched['data_interval_end'])
    print(
        f"ingest runs: {runs['past-interval']['data_interval_start']} → {runs['past-interval']['data_interval_end']} "
        f"(manual, {past_rec['metrics']['rows_clean']} rows); scheduled run up to {sched['data_interval_end']}"
    )
    # the store holds the bars of 2024-03-01 02:00 → 2024-03-02 02:00 (the scheduled run's are in December)
    code = (
        'import sys; from autotrader.config import load_settings; from autotrader.features.store import FeatureStore\n'
        'st = load_settings(); b = FeatureStore(st.store.dir).read("bars", start="2024-02-28", end="2024-03-03")\n'
        'print(b.timestamp.min().isoformat(), b.timestamp.max().isoformat(), b.instrument.nunique())'
    )
    env = {**_clean_env(), 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}
    r = subprocess.run([sys.executable, '-c', code], cwd=home, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    first, last, n = r.stdout.split()
    assert first == '2024-03-01T02:00:00+00:00' and last == '2024-03-02T01:00:00+00:00' and int(n) == 5, r.stdout


@pytest.mark.e2e
def test_ingest_dag_runs_end_to_end_like_autotrader_run_ingest(tmp_path):
    by_cli, by_airflow, exported = tmp_path / 'cli', tmp_path / 'airflow', tmp_path / 'exported'
    for d in (by_cli, by_airflow, exported):
        d.mkdir()
        (d / 'settings.ini').write_text('[data]\nlookback_days = 20\n')
    r = autotrader('schedule', 'airflow', '--out', str(tmp_path / 'dags'), cwd=exported)
    assert r.returncode == 0, r.stderr
    env = {
        **_clean_env(),
        'AIRFLOW_HOME': str(tmp_path / 'home'),
        'AIRFLOW__CORE__DAGS_FOLDER': str(tmp_path / 'dags'),
        'AIRFLOW__CORE__LOAD_EXAMPLES': 'False',
        'PYTHONWARNINGS': 'ignore',
        'AUTOTRADER_HOME': str(by_airflow),
        'PATH': f"{KIT_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
    }
    r = subprocess.run(
        [str(AIRFLOW), 'db', 'migrate'], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = subprocess.run(
        [str(AIRFLOW), 'dags', 'test', 'autotrader_ingest', '2024-01-01'],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (a,) = list((by_airflow / 'reports' / 'ingest').glob('*/'))
    params = json.loads((a / 'run.json').read_text())['parameters']  # the DAG run's data interval
    start, end = datetime.fromisoformat(params['start']), datetime.fromisoformat(params['end'])
    assert (
        end - start == timedelta(days=1)
        and end.hour == 2
        and end <= datetime.fromisoformat('2024-01-01T02:00:00+00:00')
    )
    assert params['backfill'] is True
    r = autotrader(
        'run', 'ingest', '--no-progress', *[a for k, v in params.items() for a in ('-p', f'{k}={v}')], cwd=by_cli
    )
    assert r.returncode == 0, r.stdout + r.stderr

    (c,) = list((by_cli / 'reports' / 'ingest').glob('*/'))
    assert (
        sorted(p.name for p in a.iterdir())
        == sorted(p.name for p in c.iterdir())
        == ['notebook.ipynb', 'report.html', 'run.json']
    )
    ra, rc = (json.loads((d / 'run.json').read_text()) for d in (a, c))
    assert ra['status'] == rc['status'] == 'ok' and ra.keys() == rc.keys()
    assert (
        ra['metrics'].keys() == rc['metrics'].keys()
        and ra['metrics']['instruments'] == rc['metrics']['instruments'] == 5
    )
    assert ra['metrics']['rows_clean'] == rc['metrics']['rows_clean'] > 0 and ra['sla_s'] == rc['sla_s'] == 7200
    assert ra['parameters'] == rc['parameters'] and ra['metrics']['rows_clean'] > 0
    for d in (by_airflow, by_cli):
        assert (d / 'reports' / 'index.html').exists() and (d / 'autotrader-data' / 'store' / 'catalog.json').exists()
        assert (d / 'autotrader-data' / 'metrics' / 'autotrader_pipeline_ingest.prom').exists()
