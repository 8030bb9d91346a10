"""`autotrader run all` as a user runs it: the whole lifecycle once on embedded defaults (the synthetic market, local
files, MLflow on SQLite; fewer tuning trials and a shorter history here to keep CI short), every stage's status and
duration printed, every pipeline's report and the index left, a champion that `autotrader serve` then serves; a
failing stage stops it clearly."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from inprocess import autotrader_cli
from local_servers import free_port

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group('run_all')]  # the session's `run all` (conftest), one worker


def _env(**extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith('AUTOTRADER')}
    e['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))
    return {**e, **extra}


def _run_all(cwd, **env):
    "`autotrader run all` in `cwd` (in process: every stage still runs its notebook in its own kernel)."
    return autotrader_cli('run', 'all', '--no-progress', cwd=cwd, env=env)


def test_run_all_runs_the_lifecycle_and_stops_clearly_at_a_failing_stage(run_all_site, tmp_path):
    site, out = run_all_site['dir'], run_all_site['out']  # `run all` in a fresh folder, then an up-to-date ingest
    stages = dict(re.findall(r'^(ingest|train|evaluate|rollout|health)\s+(ok|skipped|failed|timeout)\s', out, re.M))
    assert list(stages) == ['ingest', 'train', 'evaluate', 'rollout', 'health'], out
    assert all(stages[s] == 'ok' for s in ('ingest', 'train', 'evaluate', 'health')), out
    assert (
        re.search(r'^wall time: [\d.]+ min \(\d+ s\)$', out, re.M)
        and f"index:     {site / 'reports' / 'index.html'}" in out
    )
    for p in ('ingest', 'train', 'evaluate', 'health'):
        runs = sorted((site / 'reports' / p).glob('*/run.json'))
        assert len(runs) == (2 if p == 'ingest' else 1), runs  # ingest: run all's, then the up-to-date one
        assert all(json.loads(r.read_text())['status'] == 'ok' and (r.parent / 'report.html').exists() for r in runs)
    ev = json.loads(next((site / 'reports' / 'evaluate').glob('*/run.json')).read_text())
    # the embedded defaults' demo edge is promoted and rolled out (replay clock): the run ends with a champion
    assert stages['rollout'] == 'ok' and ev['metrics']['promote'], out
    assert json.loads(next((site / 'reports' / 'rollout').glob('*/run.json')).read_text())['parameters'] == {
        'clock': 'replay'
    }
    index = (site / 'reports' / 'index.html').read_text()
    assert all(f'id="{p}"' in index for p in ('ingest', 'train', 'evaluate', 'rollout', 'health'))
    # `autotrader serve` started afterwards bootstraps from the champion alias: it serves the version run all printed
    champion = re.search(r'^champion:  version (\S+) ', out, re.M).group(1)
    port = free_port()
    log = open(tmp_path / 'serve.log', 'wb')
    gw = subprocess.Popen(
        [sys.executable, '-m', 'autotrader.cli', 'serve', '--port', str(port)],
        cwd=site,
        env=_env(NO_PROXY='127.0.0.1,localhost'),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        body, deadline = None, time.monotonic() + 120
        while body is None and time.monotonic() < deadline and gw.poll() is None:
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/v1/signal/BTC-USD', timeout=10) as resp:
                    body = json.loads(resp.read())
            except OSError:
                time.sleep(0.5)
        assert body is not None, (tmp_path / 'serve.log').read_text()[-3000:]
        assert str(body['version']) == champion and body['instrument'] == 'BTC-USD', body
    finally:
        os.killpg(gw.pid, signal.SIGTERM)
        gw.wait(timeout=30)
        log.close()

    # a stage that fails stops the lifecycle with its name, its report and its exit code (on a copy: the site is shared)
    shutil.copytree(site, tmp_path / 'site')
    r = _run_all(tmp_path / 'site', AUTOTRADER__TRAIN__MIN_TEST_TIMESTAMPS='1000000')
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r'^train\s+failed', r.stdout, re.M) and 'FAILED at train' in r.stdout and 'report: ' in r.stdout
    assert not re.search(r'^(evaluate|health)\s', r.stdout, re.M)
    assert len(list((tmp_path / 'site' / 'reports' / 'train').glob('*/run.json'))) == 2
