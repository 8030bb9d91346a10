"""The exported Airflow DAGs under a real Apache Airflow 3 (its own virtual environment, installed by .ci/run into
.venv-airflow; $AUTOTRADER_AIRFLOW names another `airflow` executable): they parse cleanly, the ingest DAG runs end
to end on embedded defaults leaving the same report files as `autotrader run ingest`, and evaluate triggers rollout
only when it promoted."""
import json, os, subprocess, sys
from pathlib import Path

import nbformat, pytest
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = Path(os.environ.get('AUTOTRADER_AIRFLOW') or ROOT / '.venv-airflow' / 'bin' / 'airflow')
pytestmark = pytest.mark.skipif(not AIRFLOW.exists(), reason=f'no Apache Airflow at {AIRFLOW} (bash .ci/run installs it)')
KS = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}


def _env(home, dags, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(('AUTOTRADER', 'AIRFLOW', 'VIRTUAL_ENV'))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(dags), AIRFLOW__CORE__LOAD_EXAMPLES='False',
               PYTHONWARNINGS='ignore', **extra)   # the graphviz warning on stdout would break -o json
    return env


def airflow(*args, home, dags, cwd=None, timeout=600):
    r = subprocess.run([str(AIRFLOW), *args], cwd=cwd or home, env=_env(home, dags), capture_output=True, text=True, timeout=timeout)
    return r


def autotrader(*args, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if not k.startswith('AUTOTRADER')}
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))
    return subprocess.run([sys.executable, '-m', 'autotrader.cli', *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def home(tmp_path_factory):
    "An Airflow home with a migrated SQLite metadata database."
    h = tmp_path_factory.mktemp('airflow-home')
    r = airflow('db', 'migrate', home=h, dags=h / 'dags')
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return h


def _notebook(path, code):
    p = new_code_cell('n = 1'); p.metadata['tags'] = ['parameters']
    nbformat.write(new_notebook(cells=[p, new_code_cell(code)], metadata=KS), path)


def test_exported_dags_parse_and_evaluate_triggers_rollout_only_when_it_promoted(home, tmp_path):
    # stand-in evaluate and rollout notebooks (the real ones are exercised by `run all`): promote comes from a file
    _notebook(tmp_path / 'evaluate.ipynb', 'from pathlib import Path\nfrom autotrader.ops.runner import record_metrics\n'
                                           'record_metrics(promote=Path("promote.txt").read_text().strip() == "yes")')
    _notebook(tmp_path / 'rollout.ipynb', 'print("rolled out")')
    (tmp_path / 'settings.ini').write_text(f'[data]\ndir = data\n[pipeline_evaluate]\nnotebook = {tmp_path / "evaluate.ipynb"}\n'
                                           f'retries = 0\n[pipeline_rollout]\nnotebook = {tmp_path / "rollout.ipynb"}\n')
    dags = tmp_path / 'dags'
    r = autotrader('schedule', 'airflow', '--out', str(dags), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in dags.glob('*.py'))
    assert names == ['autotrader_evaluate.py', 'autotrader_health.py', 'autotrader_ingest.py', 'autotrader_rollout.py', 'autotrader_train.py']
    src = (dags / 'autotrader_evaluate.py').read_text()
    assert 'from airflow.sdk import DAG' in src and "trigger_dag_id='autotrader_rollout'" in src and 'ShortCircuitOperator' in src

    r = airflow('dags', 'list-import-errors', '--local', '-o', 'json', home=home, dags=dags)
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stdout + r.stderr
    r = airflow('dags', 'list', '--local', '-o', 'json', home=home, dags=dags)
    assert r.returncode == 0, r.stderr
    assert sorted(d['dag_id'] for d in json.loads(r.stdout)) == [n[:-3] for n in names]
    # the check can fail: a broken DAG file is reported
    (dags / 'broken_dag.py').write_text('import no_such_module  # an airflow dag\n')
    r = airflow('dags', 'list-import-errors', '--local', '-o', 'json', home=home, dags=dags)
    assert r.returncode == 1 and 'no_such_module' in r.stdout
    (dags / 'broken_dag.py').unlink()

    for day, promote in (('2024-01-01', 'no'), ('2024-01-02', 'yes')):
        (tmp_path / 'promote.txt').write_text(promote)
        r = airflow('dags', 'test', 'autotrader_evaluate', day, home=home, dags=dags, cwd=tmp_path)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    runs = sorted((tmp_path / 'reports' / 'evaluate').glob('*/run.json'))
    assert [json.loads(p.read_text())['metrics']['promote'] for p in runs] == [False, True]
    r = airflow('dags', 'list-runs', 'autotrader_rollout', '-o', 'json', home=home, dags=dags)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 1, r.stdout      # triggered once: by the run that promoted


@pytest.mark.slow
def test_ingest_dag_runs_end_to_end_like_autotrader_run_ingest(home, tmp_path):
    by_cli, by_airflow = tmp_path / 'cli', tmp_path / 'airflow'
    by_cli.mkdir(); by_airflow.mkdir()
    r = autotrader('schedule', 'airflow', '--out', str(by_airflow / 'dags'), cwd=by_airflow)     # embedded defaults
    assert r.returncode == 0, r.stderr
    r = airflow('dags', 'test', 'autotrader_ingest', '2024-01-01', home=home, dags=by_airflow / 'dags', cwd=by_airflow)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = autotrader('run', 'ingest', '--no-progress', cwd=by_cli)
    assert r.returncode == 0, r.stdout + r.stderr

    (a,), (c,) = list((by_airflow / 'reports' / 'ingest').glob('*/')), list((by_cli / 'reports' / 'ingest').glob('*/'))
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in c.iterdir()) == ['notebook.ipynb', 'report.html', 'run.json']
    ra, rc = (json.loads((d / 'run.json').read_text()) for d in (a, c))
    assert ra['status'] == rc['status'] == 'ok' and ra.keys() == rc.keys()
    assert ra['metrics'].keys() == rc['metrics'].keys() and ra['metrics']['instruments'] == rc['metrics']['instruments'] == 5
    assert ra['metrics']['rows_clean'] > 0 and ra['sla_s'] == rc['sla_s'] == 7200 and ra['parameters'] == rc['parameters']
    for d in (by_airflow, by_cli):
        assert (d / 'reports' / 'index.html').exists() and (d / 'autotrader-data' / 'store' / 'catalog.json').exists()
        assert (d / 'autotrader-data' / 'metrics' / 'autotrader_pipeline_ingest.prom').exists()
