"""reports/index.html in a real headless browser (Debian's chromium driven by Playwright, no browser download): it
renders from disk, lists the runs by pipeline with their figures and trend plots, and its links open the reports.
The screenshot is saved in the test's tmp folder (printed; kept by pytest under its basetemp)."""

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autotrader.ops.runner import run_pipeline

CHROMIUM = os.environ.get('AUTOTRADER_CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
playwright = pytest.importorskip('playwright.sync_api')
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason='no chromium (apt-get install chromium; .ci/run does)'),
]
KS = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}
FLAGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
]


def _pipeline(folder, name, code):
    p = new_code_cell('fail = False\nscale = 1\nrun_context = None')
    p.metadata['tags'] = ['parameters']
    nbformat.write(
        new_notebook(
            cells=[
                p,
                new_code_cell(
                    'from autotrader.pipelines.context import RunContext\nrecord_metrics = RunContext.from_param(run_context).record\n'
                    'if fail: raise RuntimeError("source unreachable")\n' + code
                ),
                new_code_cell(f'print("report of {name}")'),
            ],
            metadata=KS,
        ),
        folder / f'{name}.ipynb',
    )
    return folder / f'{name}.ipynb'


@pytest.fixture
def reports(hermetic):
    "Real runs of stand-in pipelines (named like ours, recording the same figures): 2 ingest (1 failed), evaluate, health."
    d = hermetic
    (d / 'settings.ini').write_text(
        '[data]\ndir = data\n[metrics]\nsla_seconds = ingest=7200, evaluate=0.1, health=900\n'
    )
    ing = _pipeline(
        d,
        'ingest',
        'record_metrics(rows_in=1000 * scale, rows_clean=990 * scale, rows_quarantined=10 * scale, instruments=5)',
    )
    ev = _pipeline(
        d,
        'evaluate',
        'record_metrics(version="3", promote=True, gates_failed=[], test_sharpe=2.41, test_max_drawdown=0.08, test_win_rate=0.57)',
    )
    he = _pipeline(
        d, 'health', 'record_metrics(level="warning", drift_critical=0, drift_warning=2, max_psi=0.23, alerts=2)'
    )
    runs = [
        run_pipeline(ing, {'scale': 1}, 'settings.ini', progress=False, run_id='i1'),
        run_pipeline(ing, {'scale': 2}, 'settings.ini', progress=False, run_id='i2'),
        run_pipeline(ing, {'fail': True}, 'settings.ini', progress=False, run_id='i3'),
        run_pipeline(ev, None, 'settings.ini', progress=False, run_id='e1'),
        run_pipeline(he, None, 'settings.ini', progress=False, run_id='h1'),
    ]
    assert [r.status for r in runs] == ['ok', 'ok', 'failed', 'ok', 'ok']
    return d / 'reports'


def test_index_renders_lists_runs_with_figures_and_links_open_reports(reports, tmp_path):
    index = reports / 'index.html'
    shot = tmp_path / 'index.png'
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)  # a fresh profile of its own
        try:
            page = browser.new_page(viewport={'width': 1280, 'height': 900})
            errors = []
            page.on('pageerror', lambda e: errors.append(str(e)))
            page.goto(index.as_uri())
            assert page.title() == 'AutoTrader runs' and not errors
            # one section per pipeline, in lifecycle order, each with its trend plot
            assert page.locator('section h2').all_inner_texts() == ['ingest', 'evaluate', 'health']
            assert page.locator('section svg.trend').count() == 3
            assert page.locator('svg.trend[data-pipeline="ingest"] rect').count() == 3
            # the runs with their figures
            assert page.locator('tr.run').count() == 5
            row = page.locator('tr.run[data-run="i2"]').inner_text()
            assert 'ok' in row and '2,000' in row and '1,980' in row and '20' in row and '/ 2 h' in row
            failed = page.locator('tr.run[data-run="i3"]').inner_text()
            assert 'failed' in failed and 'RuntimeError: source unreachable' in failed
            ev = page.locator('tr.run[data-run="e1"]').inner_text()
            assert 'yes' in ev and '2.41' in ev and '0.57' in ev and '⚠ SLA' in ev  # evaluate's SLA is 0.1 s here
            assert 'warning' in page.locator('tr.run[data-run="h1"]').inner_text()
            summary = page.locator('table.summary').inner_text()
            assert 'ingest' in summary and 'failed' in summary
            page.screenshot(path=str(shot), full_page=True)
            # every report link opens its report
            links = page.locator('tr.run a').evaluate_all('els => els.map(e => e.href)')
            assert len(links) == 5
            for href in links:
                r = browser.new_page()
                r.goto(href)
                name = href.rsplit('/', 3)[-3]
                assert f'report of {name}' in r.content() or 'source unreachable' in r.content(), href
                r.close()
            page.locator('tr.run[data-run="e1"] a').click()
            page.wait_for_load_state()
            assert page.url.endswith('/evaluate/e1/report.html') and 'report of evaluate' in page.content()
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    print(f'screenshot: {shot}')
