"Papermill runner and `autotrader` CLI, with a real Jupyter kernel (python3) and real papermill."

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests run against the source checkout

from autotrader.cli import main
from autotrader.ops.runner import PipelineError, list_pipelines, pipeline_path, run_pipeline

SECRET = 'oanda-tok-7f3e9c1d2b'
PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='  # 1x1 px
KS = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}


def _nb(path, *sources, params='n = 1\nnote = "hello"\nrun_context = None'):
    p = new_code_cell(params)
    p.metadata['tags'] = ['parameters']
    nbformat.write(new_notebook(cells=[p, *map(new_code_cell, sources)], metadata=KS), path)
    return path


@pytest.fixture(scope='module')
def nbs(tmp_path_factory):
    d = tmp_path_factory.mktemp('notebooks')
    return dict(
        ok=_nb(
            d / 'ok.ipynb',
            'import os\nfrom autotrader.pipelines.context import RunContext\nrecord_metrics = RunContext.from_param(run_context).record\n'
            'print("token is", os.environ["AUTOTRADER_OANDA_TOKEN"])',
            f'from IPython.display import Image\nImage(data=__import__("base64").b64decode("{PNG}"))',
            'record_metrics(rows=n * 10, note=note)\n'
            'record_metrics(cwd=os.getcwd(), settings=os.environ.get("AUTOTRADER_SETTINGS"), run={k: run_context[k] for k in ("run_id", "run_dir")})',
        ),
        fail=_nb(d / 'fail.ipynb', 'raise ValueError(f"boom {n}")'),
        slow=_nb(d / 'slow.ipynb', 'import time\ntime.sleep(60)'),
    )


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    "Hermetic: cwd is tmp_path, no AUTOTRADER_* from the outside, one secret in the environment."
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith('AUTOTRADER')]:
        monkeypatch.delenv(k)
    monkeypatch.setenv('AUTOTRADER_OANDA_TOKEN', SECRET)


def _run_dirs(reports):
    return sorted(p for p in Path(reports).glob('*/*') if p.is_dir())


def test_success_writes_run_folder_and_scrubs_secrets(nbs, tmp_path):
    (tmp_path / 'settings.ini').write_text('[reports]\ndir = out\n[runner]\ntimeout = 120\n')
    r = run_pipeline(nbs['ok'], {'n': 3, 'note': 'hi'}, settings_path='settings.ini', progress=False)
    assert r.status == 'ok' and r.error is None, r.error
    assert r.run_dir.parent == tmp_path / 'out' / 'ok'  # [reports] dir, relative to the settings file
    assert {p.name for p in r.run_dir.iterdir()} == {'notebook.ipynb', 'report.html', 'run.json'}
    rec = json.loads((r.run_dir / 'run.json').read_text())
    assert rec['status'] == 'ok' and rec['parameters'] == {'n': 3, 'note': 'hi'} and rec['timeout_s'] == 120
    assert (
        rec['metrics']
        == r.metrics
        == {
            'rows': 30,
            'note': 'hi',
            'cwd': str(tmp_path),
            'settings': str(tmp_path / 'settings.ini'),
            'run': {'run_id': r.run_id, 'run_dir': str(r.run_dir)},
        }
    )
    assert rec['settings_file'] == str(tmp_path / 'settings.ini') and rec['autotrader_version']
    assert rec['duration_s'] > 0 and rec['started'] <= rec['ended']
    # the notebook printed the secret: it is gone from every output
    assert rec['secrets_scrubbed'] >= 1
    for f in r.run_dir.iterdir():
        assert SECRET not in f.read_text(), f.name
    assert 'token is ***' in r.notebook.read_text() and 'token is ***' in r.report.read_text()
    assert f'data:image/png;base64,{PNG}' in r.report.read_text()  # images embedded
    # environment restored; the index links the run
    assert 'AUTOTRADER_RUN_ID' not in os.environ and 'AUTOTRADER_SETTINGS' not in os.environ
    assert f'ok/{r.run_id}/report.html' in (tmp_path / 'out' / 'index.html').read_text()
    # a run id is never reused
    with pytest.raises(PipelineError, match='already exists'):
        run_pipeline(nbs['ok'], settings_path='settings.ini', run_id=r.run_id, progress=False)


def test_failed_and_timed_out_runs_via_cli(nbs, tmp_path, capsys):
    reports = tmp_path / 'reports'
    assert (
        main(['run', str(nbs['fail']), '-p', 'n=7', '--reports', str(reports), '--run-id', 'a-fail', '--no-progress'])
        == 1
    )
    out = capsys.readouterr().out
    assert 'status:  failed' in out and 'ValueError: boom 7' in out
    run = reports / 'fail' / 'a-fail'
    rec = json.loads((run / 'run.json').read_text())
    assert rec['status'] == 'failed' and rec['error'] == 'ValueError: boom 7'
    assert 'boom 7' in (run / 'report.html').read_text() and 'ValueError' in (run / 'notebook.ipynb').read_text()

    assert (
        main(
            [
                'run',
                str(nbs['slow']),
                '--reports',
                str(reports),
                '--timeout',
                '3',
                '--run-id',
                'b-slow',
                '--no-progress',
            ]
        )
        == 3
    )
    rec = json.loads((reports / 'slow' / 'b-slow' / 'run.json').read_text())
    assert rec['status'] == 'timeout' and rec['duration_s'] < 30
    assert 'timeout' in (reports / 'slow' / 'b-slow' / 'report.html').read_text()

    index = (reports / 'index.html').read_text()
    assert 'fail/a-fail/report.html' in index and 'slow/b-slow/report.html' in index
    assert index.index('b-slow') < index.index('a-fail')  # newest first
    (reports / 'index.html').unlink()
    assert (
        main(['reports', 'index', '--reports', str(reports)]) == 0 and 'a-fail' in (reports / 'index.html').read_text()
    )


@pytest.mark.parametrize(
    'param, says',
    [
        ('nope=1', "unknown parameter 'nope'"),
        ('api_token=abc', "'api_token' looks like a secret"),
        (f'note={SECRET}', 'contains a secret from the environment'),
        (f'note=prefix-{SECRET}', 'contains a secret from the environment'),
        ('note=postgresql://bob:hunter22@db/x', 'looks like a credential'),
        ('note=https://hooks.slack.com/services/T0/B0/xyz', 'looks like a credential'),
    ],
)
def test_bad_parameters_refused_before_anything_runs(nbs, tmp_path, capsys, param, says):
    assert main(['run', str(nbs['ok']), '-p', param, '--reports', str(tmp_path / 'reports')]) == 2
    err = capsys.readouterr().err
    assert says in err and SECRET not in err and 'Traceback' not in err
    assert not (tmp_path / 'reports').exists()


@pytest.mark.parametrize(
    'pipeline, param, says',
    [
        ('ingest', 'timeframe=7m', "ingest: parameter timeframe='7m': expected one of 1m, 5m, 15m, 30m, 1h, 4h, 1d"),
        ('ingest', 'start=yesterday', "ingest: parameter start='yesterday': expected an ISO 8601 date or date-time"),
        ('ingest', 'backfill=maybe', "ingest: parameter backfill='maybe': expected true or false"),
        ('ingest', 'end=2020-01-01', "ingest: parameter end='2020-01-01' is not after start='2024-01-01'"),
        ('train', 'n_trials=0', 'train: parameter n_trials=0: expected an integer >= 1'),
        ('train', 'valid_size=1.5', 'train: parameter valid_size=1.5: expected a number > 0 and < 1'),
        ('evaluate', 'version=-3', "evaluate: parameter version=-3: expected a registered version number"),
        ('rollout', 'strategy=yolo', "rollout: parameter strategy='yolo': expected one of canary, bluegreen"),
        ('health', 'current_hours=soon', "health: parameter current_hours='soon': expected an integer >= 0"),
    ],
)
def test_bad_parameter_values_exit_2_before_a_kernel_starts(tmp_path, pipeline, param, says):
    "A value its pipeline does not allow: exit 2, one line naming the parameter, the value and what is allowed; nothing written."
    extra = ['-p', 'start=2024-01-01'] if param.startswith('end=') else []
    r = _cli('run', pipeline, '-p', param, *extra, cwd=tmp_path, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [f"autotrader: error: {says}" + r.stderr.strip().split(says, 1)[1]], (
        r.stderr
    )
    assert r.stdout == '' and 'Traceback' not in r.stderr
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())  # no report, no index, no alert outbox, no data


def test_good_parameter_values_are_converted(tmp_path):
    from autotrader.ops.runner import _check_parameters

    assert _check_parameters(
        {'n_trials': '5', 'valid_size': '0.2', 'instruments': 'BTC-USD, ETH-USD'}, pipeline_path('train')
    ) == {'n_trials': 5, 'valid_size': 0.2, 'instruments': 'BTC-USD,ETH-USD'}


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(['run', 'no-such-pipeline']) == 2
    assert 'available:' in capsys.readouterr().err
    assert main(['run', 'x', '-p', 'novalue']) == 2
    (tmp_path / 'bad.ini').write_text('[runner]\nkernel_x = 1\n')
    assert main(['settings', 'check', '--settings', str(tmp_path / 'bad.ini')]) == 2
    assert 'kernel_x' in capsys.readouterr().err
    assert main(['settings', 'check']) == 0 and 'OK' in capsys.readouterr().out


def test_pipeline_lookup():
    with pytest.raises(PipelineError, match='unknown pipeline'):
        pipeline_path('no-such-pipeline')
    if 'ingest' in list_pipelines():
        assert pipeline_path('ingest') == ROOT / 'nbs' / 'pipelines' / 'ingest.ipynb'


def test_console_module(tmp_path, capsys):
    "`python -m autotrader.cli` runs as a program (one child process); its help, in process."
    assert main(['--help']) == 0
    out = capsys.readouterr().out
    assert 'exit codes' in out and 'run' in out
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}
    r = subprocess.run(
        [sys.executable, '-m', 'autotrader.cli', 'pipelines'], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0 and 'ingest' in r.stdout, r.stderr


def _cli(*args, cwd, env=None, timeout=180):
    "The real `autotrader` command in a child process: what a person sees on the terminal."
    env = {
        **os.environ,
        **(env or {}),
        'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
    }
    return subprocess.run(
        [sys.executable, '-m', 'autotrader.cli', *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_reports_and_terminal_carry_no_warning_noise_and_code_can_be_hidden(tmp_path):
    nb = _nb(
        tmp_path / 'noisy.ipynb',
        '# code-marker\nfrom tqdm.auto import tqdm\ntotal = sum(tqdm(range(3)))\nprint("total", total)',
        'from IPython.display import HTML\nHTML(\'<iframe src="about:blank" title="card"></iframe>\')',
    )
    r = _cli('run', str(nb), '--reports', 'r', '--run-id', 'with-code', '--no-progress', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for noise in ('IPKernelApp', 'without encryption', 'KeyboardInterrupt', 'Warning'):
        assert noise not in r.stdout + r.stderr, (noise, r.stderr)
    assert r.stdout.strip().splitlines()[-1] == f"record:  {tmp_path / 'r' / 'noisy' / 'with-code' / 'run.json'}"
    page = (tmp_path / 'r' / 'noisy' / 'with-code' / 'report.html').read_text()
    assert 'total 3' in page and 'code-marker' in page and 'title="card"' in page
    assert (
        'IProgress' not in page and 'Consider using IPython.display.IFrame' not in page and 'output_stderr' not in page
    )  # no progress bar either
    # for readers: the code hidden, the outputs kept; the executed notebook keeps the code
    r = _cli('run', str(nb), '--reports', 'r', '--run-id', 'no-code', '--no-progress', '--no-input', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = tmp_path / 'r' / 'noisy' / 'no-code'
    page = (run / 'report.html').read_text()
    assert 'total 3' in page and 'title="card"' in page and 'code-marker' not in page
    assert (
        'code-marker' in (run / 'notebook.ipynb').read_text() and json.loads((run / 'run.json').read_text())['no_input']
    )


def test_time_out_leaves_no_kernel_messages_on_the_terminal(nbs, tmp_path):
    r = _cli('run', str(nbs['slow']), '--reports', 'r', '--timeout', '4', '--no-progress', cwd=tmp_path)
    assert r.returncode == 3 and 'status:  timeout' in r.stdout
    assert 'KeyboardInterrupt' not in r.stderr + r.stdout and 'IPKernelApp' not in r.stderr, r.stderr


def test_sla_misses_and_failures_are_recorded_and_alerted_to_a_webhook(nbs, tmp_path, monkeypatch):
    from monitor_helpers import Receiver

    (tmp_path / 'settings.ini').write_text(
        '[data]\ndir = data\n[metrics]\nsla_seconds = ok=0.2, fail=600\n[alerts]\nsinks = file, slack\n'
    )
    with Receiver() as rx:
        monkeypatch.setenv('AUTOTRADER_SLACK_WEBHOOK_URL', rx.url('/slack/hook'))
        slow = run_pipeline(nbs['ok'], settings_path='settings.ini', progress=False)  # a kernel alone takes > 0.2 s
        failed = run_pipeline(nbs['fail'], settings_path='settings.ini', progress=False)
        quick = run_pipeline(nbs['ok'], settings_path='settings.ini', progress=False, run_id='within-sla')
    assert slow.status == 'ok' and slow.sla_missed and slow.sla_s == 0.2
    rec = json.loads((slow.run_dir / 'run.json').read_text())
    assert rec['sla_missed'] is True and rec['sla_s'] == 0.2 and rec['duration_s'] > 0.2
    assert [(a['level'], a['check'], a['slack']) for a in rec['alerts']] == [('warning', 'pipeline_sla', 'sent')]
    assert failed.status == 'failed' and not failed.sla_missed
    assert [(a['level'], a['check'], a['slack']) for a in failed.alerts] == [('critical', 'pipeline_failed', 'sent')]
    assert (
        quick.sla_missed and quick.alerts[0]['status'] == 'suppressed'
    )  # same key within the cool-down: recorded, not re-sent
    texts = [json.dumps(q['json']) for q in rx.requests]
    assert len(texts) == 2 and all(q['path'] == '/slack/hook' for q in rx.requests)
    assert 'missed its SLA' in texts[0] and slow.run_id in texts[0] and 'ValueError: boom 1' in texts[1]
    outbox = [json.loads(l) for l in (tmp_path / 'data' / 'alerts' / 'alerts.jsonl').read_text().splitlines()]
    assert [o['check'] for o in outbox] == ['pipeline_sla', 'pipeline_failed', 'pipeline_sla']
    index = (tmp_path / 'reports' / 'index.html').read_text()
    assert '⚠ SLA' in index and 'class="over"' in index.replace('class="num over"', 'class="over"')
