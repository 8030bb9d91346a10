"The documentation site: built offline from the README, docs/, the runbooks and every notebook, no broken links; headless Chromium opens its index and a notebook page."

import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from browser import browser_page

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / 'docs' / 'build.py'


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('docs') / 'site'
    r = subprocess.run([sys.executable, str(BUILD), '--out', str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'no broken links' in r.stdout
    return out


def test_site_has_every_page(site):
    for page in (
        'index.html',
        'docs/architecture.html',
        'docs/operations.html',
        'ops/runbooks/README.html',
        'ops/runbooks/procedures/disaster-recovery.html',
        'ops/runbooks/alerts/AutoTraderPipelineFailed.html',
        'ops/terraform/README.html',
        'nbs/ops/85_recovery.html',
        'nbs/pipelines/ingest.html',
        'assets/site.css',
    ):
        assert (site / page).is_file(), page
    notebooks = sorted(p for p in (ROOT / 'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
    for nb in notebooks:
        assert (site / nb.relative_to(ROOT).with_suffix('.html')).is_file(), nb
    index = (site / 'index.html').read_text()
    assert 'href="docs/architecture.html"' in index and '../shared' not in index  # README links rewritten into the site
    # the architecture guide links to the nbs/ folder: a listing page stands in for it
    assert 'href="../nbs/index.html"' in (site / 'docs' / 'architecture.html').read_text()
    assert 'href="ops/index.html"' in (site / 'nbs' / 'index.html').read_text()


def test_broken_links_fail_the_build(tmp_path):
    repo = tmp_path / 'repo'
    (repo / 'docs').mkdir(parents=True)
    (repo / 'nbs').mkdir()
    (repo / 'README.md').write_text('# Demo\n\n[guide](docs/guide.md) and [gone](docs/missing.md)\n')
    (repo / 'docs' / 'guide.md').write_text(
        '# Guide\n\n[home](../README.md), [a folder](../nbs/), [rules](rules.yml)\n'
    )
    (repo / 'docs' / 'rules.yml').write_text('groups: []\n')
    r = subprocess.run(
        [sys.executable, str(BUILD), '--root', str(repo), '--out', str(tmp_path / 'out')],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and 'README.md: link docs/missing.md → docs/missing.md does not exist' in r.stderr
    (repo / 'README.md').write_text('# Demo\n\n[guide](docs/guide.md)\n')
    r = subprocess.run(
        [sys.executable, str(BUILD), '--root', str(repo), '--out', str(tmp_path / 'out')],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'out' / 'docs' / 'guide.html').read_text().count('href="../index.html"') >= 1
    assert (tmp_path / 'out' / 'docs' / 'rules.yml').read_text() == 'groups: []\n'  # linked files are copied


@pytest.fixture
def served(site):
    "The site on a local HTTP server (127.0.0.1, a free port), as a user would publish it."
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f'http://127.0.0.1:{httpd.server_address[1]}'
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.browser
def test_chromium_opens_the_index_and_a_notebook_page(served, tmp_path):
    with browser_page(tmp_path) as page:
        errors = []
        page.on('pageerror', lambda e: errors.append(str(e)))
        page.goto(f'{served}/index.html')
        assert page.title() == 'AutoTrader — AutoTrader'
        assert page.locator('main h1').first.inner_text().strip() == 'AutoTrader'
        page.screenshot(path=str(tmp_path / 'index.png'))
        # follow the navigation to a library notebook, as a reader would
        page.locator('nav a', has_text='85_recovery').click()
        page.wait_for_url('**/nbs/ops/85_recovery.html')
        assert 'verify_archive' in page.locator('main').inner_text()
        assert page.locator('main .code_cell').count() > 5
        page.screenshot(path=str(tmp_path / 'notebook.png'), full_page=False)
        # and a pipeline notebook
        page.goto(f'{served}/nbs/pipelines/ingest.html')
        assert page.locator('main h1').first.inner_text().strip().startswith('Ingest')
        assert not errors, errors
    assert (tmp_path / 'index.png').stat().st_size > 10_000 and (tmp_path / 'notebook.png').stat().st_size > 10_000
