"A user without the repository: non-editable pip install into a new virtual environment, run ingest from an empty folder."

import json
import os
import subprocess
import sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_pip_install_and_run_outside_the_repository(tmp_path):
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'AUTOTRADER_SETTINGS')}
    env['PATH'] = f"{venv / 'bin'}:/usr/bin:/bin"
    pip = subprocess.run(
        [str(venv / 'bin' / 'pip'), 'install', '-q', str(ROOT)], env=env, capture_output=True, text=True
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    work = tmp_path / 'empty'
    work.mkdir()
    r = subprocess.run(
        [
            str(venv / 'bin' / 'autotrader'),
            'run',
            'ingest',
            '--no-progress',
            '-p',
            'start=2024-01-01',
            '-p',
            'end=2024-01-04',
            '-p',
            'instruments=BTC-USD,EUR-USD:fx',
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    runs = list((work / 'reports' / 'ingest').iterdir())
    assert len(runs) == 1
    meta = json.loads((runs[0] / 'run.json').read_text())
    assert meta['status'] == 'ok' and meta['metrics']['rows_clean'] > 0
    assert str(venv) in meta['notebook_source'], meta['notebook_source']  # the packaged notebook, not the repo's
    assert (runs[0] / 'report.html').stat().st_size > 10_000
    cat = json.loads((work / 'autotrader-data' / 'store' / 'catalog.json').read_text())
    assert cat['datasets']['bars']['rows'] == meta['metrics']['rows_clean']
    assert any(d.startswith('features/') and v['rows'] > 0 for d, v in cat['datasets'].items())
