"""JupyterLab works as the README promises (`jupyter lab nbs/`): headless Chromium opens a library notebook and a
pipeline notebook in a real JupyterLab server on 127.0.0.1 (token auth), runs cells of each in a real kernel, and sees
their output. Screenshots are saved in the test's tmp folder."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from browser import browser_page, need_chromium
from local_servers import free_port

ROOT = Path(__file__).resolve().parents[1]
NB = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook'  # the notebook in the current tab


@pytest.fixture
def lab(tmp_path):
    "`jupyter lab` on a copy of nbs/ (so autosave never touches the repository), own config/runtime/settings dirs."
    need_chromium()
    nbs = tmp_path / 'nbs'
    shutil.copytree(ROOT / 'nbs', nbs, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '__pycache__'))
    settings = tmp_path / 'lab-settings' / '@jupyterlab' / 'notebook-extension'
    settings.mkdir(parents=True)
    (settings / 'tracker.jupyterlab-settings').write_text(json.dumps({'windowingMode': 'none'}))  # render every cell
    env = {
        **os.environ,
        'JUPYTER_CONFIG_DIR': str(tmp_path / 'jcfg'),
        'JUPYTER_RUNTIME_DIR': str(tmp_path / 'jrt'),
        'JUPYTERLAB_SETTINGS_DIR': str(tmp_path / 'lab-settings'),
        'JUPYTERLAB_WORKSPACES_DIR': str(tmp_path / 'lab-ws'),
        'IPYTHONDIR': str(tmp_path / 'ipython'),
        'MPLBACKEND': 'Agg',
    }
    port, token = free_port(), uuid.uuid4().hex
    log = open(tmp_path / 'jupyterlab.log', 'w')
    proc = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'jupyter',
            'lab',
            str(nbs),
            '--no-browser',
            '--ip=127.0.0.1',
            f'--port={port}',
            '--ServerApp.port_retries=0',
            f'--IdentityProvider.token={token}',
            '--LabApp.news_url=',
            '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
            '--LabApp.extension_manager=readonly',
        ]  # no registry lookups
        + (['--allow-root'] if os.geteuid() == 0 else []),  # CI runs as root
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / 'jupyterlab.log').read_text()[-3000:]
            assert time.monotonic() < deadline, (
                'JupyterLab did not start:\n' + (tmp_path / 'jupyterlab.log').read_text()[-3000:]
            )
            time.sleep(0.5)
        # without the token, the server refuses
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f'{url}/api/contents', timeout=5)
        assert e.value.code == 403
        yield url, token
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def open_notebook(page, url, token, path):
    page.goto(f'{url}/lab/tree/{path}?token={token}')
    page.wait_for_selector(f'{NB} .jp-Cell', timeout=120_000)
    # JupyterLab may ask which kernel to start (the preferred one, Python 3 (ipykernel), is preselected): accept it
    try:
        page.locator('.jp-Dialog').filter(has_text='Select Kernel').wait_for(timeout=5_000)
        page.locator('.jp-Dialog .jp-mod-accept').click()
    except Exception:
        pass
    page.wait_for_selector(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=120_000
    )


def code_cell(page, text):
    "The code cell whose source contains `text`."
    cells = page.locator(f'{NB} .jp-CodeCell').filter(has_text=text)
    try:
        cells.first.wait_for(timeout=60_000)
    except Exception:
        raise AssertionError(
            f"no code cell with {text!r} among {page.locator(f'{NB} .jp-CodeCell').count()}: "
            f"{page.locator(NB).first.inner_text()[:500]!r}"
        )
    return cells.first


def run(page, cell):
    dialog = page.locator('.jp-Dialog')
    if dialog.count():
        raise AssertionError(f'JupyterLab shows a dialog: {dialog.first.inner_text()!r}')
    cell.locator('.cm-content').click()
    page.keyboard.press('Shift+Enter')


def run_new_cell_below(page, cell, source):
    "Insert a code cell below `cell`, type `source`, run it; the new cell's locator."
    cell.locator('.jp-InputPrompt').click()  # select the cell (command mode)
    page.keyboard.press('Escape')
    page.keyboard.press('b')
    i = page.evaluate(
        "sel => [...document.querySelectorAll(sel + ' .jp-Cell')].findIndex(c => c.classList.contains('jp-mod-active'))",
        NB,
    )
    assert i > 0
    new = page.locator(f'{NB} .jp-Cell').nth(i)  # stays this cell after running moves the selection on
    new.locator('.cm-content').click()
    page.keyboard.type(source)
    page.keyboard.press('Shift+Enter')
    return new


def output_of(page, cell, expect, shot, timeout=120_000):
    "The text of `cell`'s output once it shows `expect` (a screenshot `shot` is kept when it never does)."
    out = cell.locator('.jp-OutputArea-output')
    try:
        out.filter(has_text=expect).first.wait_for(timeout=timeout)
    except Exception:
        page.screenshot(path=str(shot))
        raise
    return out.first.inner_text()


@pytest.mark.browser
def test_jupyterlab_runs_a_library_and_a_pipeline_notebook(lab, tmp_path):
    url, token = lab
    with browser_page(tmp_path, 1400, 1000) as page:
        # a library notebook: the module's own cells, then a cell that uses what they defined
        open_notebook(page, url, token, '02_files.ipynb')
        imports = code_cell(page, 'import tempfile')
        define = code_cell(page, 'def atomic_write')
        run(page, imports)
        run(page, define)
        probe = run_new_cell_below(
            page, define, "p = atomic_write(Path(tempfile.mkdtemp()) / 'x.txt', 'hello'); print(p.read_text(), p.name)"
        )
        assert 'hello x.txt' in output_of(page, probe, 'hello x.txt', tmp_path / 'failed-library.png')
        assert define.locator('.jp-InputPrompt').inner_text().strip() == '[2]:'  # it ran, second in the kernel
        page.screenshot(path=str(tmp_path / 'jupyterlab-library.png'))

        # a pipeline notebook: its parameters and imports cells, then a cell showing what they set up
        open_notebook(page, url, token, 'pipelines/ingest.ipynb')
        params = code_cell(page, 'source = None')
        imports = code_cell(page, 'from autotrader.pipelines.ingest import')
        run(page, params)
        run(page, imports)
        probe = run_new_cell_below(
            page, imports, "print('parameters:', source, timeframe, '| driver:', run.__module__)"
        )
        assert 'parameters: None None | driver: autotrader.pipelines.ingest' in output_of(
            page, probe, 'driver: autotrader.pipelines.ingest', tmp_path / 'failed-pipeline.png'
        )
        page.screenshot(path=str(tmp_path / 'jupyterlab-pipeline.png'))
    for shot in ('jupyterlab-library.png', 'jupyterlab-pipeline.png'):
        assert (tmp_path / shot).stat().st_size > 20_000
    # the repository's notebooks were not touched (the server ran on a copy)
    assert not subprocess.run(
        ['git', 'status', '--porcelain', '--', 'nbs/02_files.ipynb', 'nbs/pipelines/ingest.ipynb'],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
