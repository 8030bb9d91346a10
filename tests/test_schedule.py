"""The local scheduler as a user runs it (`autotrader schedule run` processes) on a schedule of a few seconds:
runs happen; SIGKILL + restart neither repeats nor loses a run; a second scheduler does not double-run; an
over-SLA run raises an alert that reaches a webhook receiver. Also `schedule list | crontab | trigger`."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from inprocess import autotrader_cli
from monitor_helpers import Receiver

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e  # `autotrader schedule run` processes, killed and restarted
KS = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}
EVERY = 5  # seconds between scheduled runs


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith('AUTOTRADER')}
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))
    return {**env, **extra}


def _cli(*args, cwd, env, timeout=120):
    return subprocess.run(
        [sys.executable, '-m', 'autotrader.cli', *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _scheduler(cwd, env, name):
    log = open(cwd / f'{name}.log', 'wb')
    return subprocess.Popen(
        [sys.executable, '-m', 'autotrader.cli', 'schedule', 'run'],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _history(cwd):
    f = cwd / 'data' / 'scheduler' / 'history.jsonl'
    return [json.loads(l) for l in f.read_text().splitlines()] if f.exists() else []


def _wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.25)
    raise AssertionError(f'timed out waiting for {what}')


@pytest.fixture
def project(tmp_path):
    "A folder with a quick 'health' notebook scheduled every EVERY seconds (other pipelines unscheduled), SLA 0.5 s."
    p = new_code_cell('n = 1\nrun_context = None')
    p.metadata['tags'] = ['parameters']
    nbformat.write(
        new_notebook(
            cells=[
                p,
                new_code_cell(
                    'from autotrader.pipelines.context import RunContext\nrecord_metrics = RunContext.from_param(run_context).record\n'
                    'record_metrics(level="ok", max_psi=0.01 * n)'
                ),
            ],
            metadata=KS,
        ),
        tmp_path / 'health.ipynb',
    )
    (tmp_path / 'settings.ini').write_text(
        '[data]\ndir = data\n[reports]\ndir = reports\n[metrics]\nsla_seconds = health=0.5\n'
        '[alerts]\nsinks = file, slack\n[pipeline_ingest]\nschedule =\n[pipeline_train]\nschedule =\n'
        f'[pipeline_health]\nnotebook = {tmp_path / "health.ipynb"}\nschedule = */{EVERY} * * * * *\nretries = 0\n'
    )
    return tmp_path


def test_scheduler_runs_survives_sigkill_refuses_a_second_and_alerts_sla_misses(project):
    with Receiver() as rx:
        env = _env(AUTOTRADER_SLACK_WEBHOOK_URL=rx.url('/slack'))
        finished = lambda pid=None: [
            e for e in _history(project) if e['event'] == 'finished' and (pid is None or e['pid'] == pid)
        ]
        a = _scheduler(project, env, 'first')
        try:
            _wait(lambda: len(finished(a.pid)) >= 1, 120, 'a scheduled run')
            # a second scheduler on the same job store refuses to start (it would run every job twice)
            b = _cli('schedule', 'run', '--for-seconds', '30', cwd=project, env=env)
            assert b.returncode == 2 and 'another scheduler is running' in b.stderr and f'pid {a.pid}' in b.stderr, (
                b.stderr
            )
        finally:
            a.send_signal(signal.SIGKILL)
            a.wait()
        killed = time.time()
        # a run in flight when the scheduler died finishes in its own process (it holds the pipeline's lock)
        started_by_a = len([e for e in _history(project) if e['event'] == 'submitted' and e['pid'] == a.pid])
        _wait(
            lambda: len(list((project / 'reports' / 'health').glob('*/run.json'))) >= started_by_a,
            120,
            'the run in flight',
        )
        time.sleep(max(0.0, killed + 3 * EVERY - time.time()))  # at least three scheduled runs missed
        c = _scheduler(project, env, 'second')
        try:
            _wait(lambda: len(finished(c.pid)) >= 1, 120, 'the catch-up run after the restart')
        finally:
            c.send_signal(signal.SIGTERM)
            c.wait(timeout=30)
        assert c.returncode == 0
        restarted = next(e for e in _history(project) if e['event'] == 'started' and e['pid'] == c.pid)
        assert restarted['jobs'] == {'health': 'kept'}  # the stored job, with its missed fire times, was not replaced

    hist = _history(project)
    submitted = [e for e in hist if e['event'] == 'submitted']
    fires = [t for e in submitted for t in e['scheduled']]
    assert len(fires) == len(set(fires)), 'a scheduled run was repeated'
    assert all(len(e['scheduled']) == 1 for e in submitted)
    # after the restart: exactly one catch-up run for the missed fire times (coalesced), none lost
    start_c = datetime.fromisoformat(restarted['at']).timestamp()
    catch_up = [
        e for e in submitted if e['pid'] == c.pid and datetime.fromisoformat(e['scheduled'][0]).timestamp() < start_c
    ]
    assert len(catch_up) == 1, catch_up
    assert killed < datetime.fromisoformat(catch_up[0]['scheduled'][0]).timestamp() < start_c
    assert not [e for e in hist if e['event'] in ('missed', 'skipped')]
    # every run that finished left its run folder; the SLA misses were recorded and alerted to the webhook
    runs = [json.loads(f.read_text()) for f in (project / 'reports' / 'health').glob('*/run.json')]
    assert len(runs) >= len([e for e in hist if e['event'] == 'finished']) >= 2
    assert all(r['status'] == 'ok' and r['sla_missed'] and r['sla_s'] == 0.5 for r in runs)
    assert all(e['returncode'] == 0 for e in hist if e['event'] == 'finished')
    sent = [json.dumps(q['json']) for q in rx.requests]
    assert (
        sent
        and all(q['path'] == '/slack' for q in rx.requests)
        and 'pipeline health' in sent[0]
        and 'missed its SLA' in sent[0]
    )
    assert (project / 'reports' / 'index.html').exists() and (
        project / 'data' / 'scheduler' / 'logs' / 'health.log'
    ).exists()


def test_trigger_list_and_crontab(project):
    r = autotrader_cli('schedule', 'list', cwd=project)
    assert r.returncode == 0 and f'*/{EVERY} * * * * *' in r.stdout and 'rollout (when promote)' in r.stdout, r.stderr
    r = autotrader_cli('schedule', 'crontab', cwd=project)
    assert r.returncode == 2 and '[pipeline_health] schedule' in r.stderr and 'has seconds' in r.stderr
    r = autotrader_cli('schedule', 'crontab', cwd=project, env=dict(AUTOTRADER__PIPELINE_HEALTH__SCHEDULE='15 * * * *'))
    lines = [l for l in r.stdout.splitlines() if l and not l.startswith('#')]
    assert r.returncode == 0 and lines[0] == 'CRON_TZ=UTC' and len(lines) == 2 and lines[1].startswith('15 * * * * cd ')
    assert 'schedule trigger health --settings' in lines[1]
    # a trigger runs the pipeline as a schedule does; a second one while it runs is skipped, not run twice
    lock = project / 'data' / 'scheduler' / 'locks' / 'health.lock'
    holder = (
        subprocess.Popen(
            [
                sys.executable,
                '-c',
                'import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); '
                'fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b"4242"); print("locked", flush=True); time.sleep(60)',
                str(lock),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        if lock.parent.mkdir(parents=True, exist_ok=True) is None
        else None
    )
    try:
        assert holder.stdout.readline().strip() == 'locked'
        r = autotrader_cli('schedule', 'trigger', 'health', cwd=project)
        assert r.returncode == 0 and 'skipped: pipeline health is already running (pid 4242' in r.stdout, (
            r.stdout + r.stderr
        )
        assert not (project / 'reports' / 'health').exists()
    finally:
        holder.kill()
        holder.wait()
    r = autotrader_cli('schedule', 'trigger', 'health', cwd=project)
    assert r.returncode == 0 and 'health    ok' in r.stdout, r.stdout + r.stderr
    assert len(list((project / 'reports' / 'health').glob('*/run.json'))) == 1
    assert autotrader_cli('schedule', 'trigger', cwd=project).returncode == 2


def test_trigger_retries_with_back_off_then_follows_triggers_only_when_promoted(tmp_path):
    p = new_code_cell('n = 1\nrun_context = None')
    p.metadata['tags'] = ['parameters']

    def nb(name, code):
        nbformat.write(new_notebook(cells=[p, new_code_cell(code)], metadata=KS), tmp_path / f'{name}.ipynb')

    nb(
        'train',
        'from pathlib import Path\nf = Path("attempts"); f.write_text(f.read_text() + "x" if f.exists() else "x")\n'
        'if len(f.read_text()) < 2: raise RuntimeError("flaky source")',
    )  # fails once, then succeeds
    nb(
        'evaluate',
        'from pathlib import Path\nfrom autotrader.pipelines.context import RunContext\nrecord_metrics = RunContext.from_param(run_context).record\n'
        'record_metrics(promote=Path("promote").read_text() == "yes")',
    )
    nb('rollout', 'print("rolled out")')
    (tmp_path / 'settings.ini').write_text(
        '[data]\ndir = data\n'
        + ''.join(
            f'[pipeline_{n}]\nnotebook = {tmp_path / (n + ".ipynb")}\nretries = 2\nretry_delay = 1\n'
            for n in ('train', 'evaluate', 'rollout')
        )
    )
    (tmp_path / 'promote').write_text('no')
    r = autotrader_cli('schedule', 'trigger', 'train', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'train: attempt 1 of 3 failed (RuntimeError: flaky source); next attempt in 1 s' in r.stdout
    assert re.search(r'^train\s+ok', r.stdout, re.M) and re.search(r'^evaluate\s+ok', r.stdout, re.M)
    assert re.search(r'^rollout\s+skipped.*not triggered \(evaluate: promote = False\)', r.stdout, re.M), r.stdout
    statuses = sorted(json.loads(f.read_text())['status'] for f in (tmp_path / 'reports' / 'train').glob('*/run.json'))
    assert statuses == ['failed', 'ok'] and not (tmp_path / 'reports' / 'rollout').exists()
    (tmp_path / 'promote').write_text('yes')
    r = autotrader_cli('schedule', 'trigger', 'evaluate', cwd=tmp_path)
    assert r.returncode == 0 and re.search(r'^rollout\s+ok', r.stdout, re.M), r.stdout + r.stderr
    assert len(list((tmp_path / 'reports' / 'rollout').glob('*/run.json'))) == 1
