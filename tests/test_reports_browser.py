"""Every report type read as a person reads it: `autotrader run all` in a fresh folder (then an up-to-date second
ingest), each page opened in headless Chromium (Debian's, driven by Playwright, as in tests/browser.py) and judged on
what is visible: no warning or traceback text, no `NaN`/`None`/`dtype:` in the rendered output, no chart without data
(a matplotlib image with no coloured pixel, an index trend without bars), no text cut off by the page or inside a
table, no network request for a script (reports are self-contained offline), files readable by others (0644).

Screenshots of the top of each page are written to tmp_path; with AUTOTRADER_SCREENSHOTS=docs/reports they are
written there too, shrunk to a small palette PNG (how the README's pictures are made)."""

import json
import os
import re
import stat
from pathlib import Path

import pytest

from browser import browser_page, need_chromium

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.xdist_group('run_all'),
]  # the session's one `run all` (conftest), on one worker
WIDTH, HEIGHT = 1280, 900


@pytest.fixture(scope='module')
def site(run_all_site):
    "The session's `run all` folder (then an up-to-date second ingest): {page name: report path}."
    need_chromium()
    d, r, again = run_all_site['dir'], run_all_site['out'], run_all_site['again']
    rep = d / 'reports'
    ingests = sorted(rep.glob('ingest/*/report.html'))
    pages = {'ingest': ingests[0], 'ingest-up-to-date': ingests[-1], 'index': rep / 'index.html'}
    for p in ('train', 'evaluate', 'rollout', 'health'):
        pages[p] = next(rep.glob(f'{p}/*/report.html'))
    return dict(dir=d, pages=pages, out=r, again=again)


# what a page shows a reader, minus code inputs (a report shows its code, where `None` is Python, not a value)
_VISIBLE = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll('.jp-CodeCell .jp-Cell-inputWrapper, script, style').forEach(e => e.remove());
  return body.innerText;
}"""

_CLIPPED = """(width) => {
  const out = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > width + 1) out.push(`the page is ${doc.scrollWidth} px wide in a ${width} px window`);
  for (const el of document.querySelectorAll('table, pre, svg, img')) {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > width + 1) out.push(`${el.tagName.toLowerCase()} ends at ${Math.round(r.right)} px: ${(el.innerText || '').slice(0, 60)}`);
    if (['TABLE', 'PRE'].includes(el.tagName) && el.scrollWidth > el.clientWidth + 1)
      out.push(`${el.tagName.toLowerCase()} scrolls sideways (${el.scrollWidth} > ${el.clientWidth} px): ${(el.innerText || '').slice(0, 60)}`);
  }
  for (const td of document.querySelectorAll('td, th'))
    if (/(\\.\\.\\.|…)$/.test(td.innerText.trim()) && td.innerText.trim().length > 3) out.push(`cut-off cell: ${td.innerText.trim().slice(-60)}`);
  return out;
}"""

# colour pixels of each output image: a matplotlib chart with data has some (lines, bars, markers, heat maps);
# axes, ticks, grid and text alone are grey
_IMAGES = """async () => {
  const out = [];
  for (const img of document.querySelectorAll('.jp-OutputArea-output img')) {
    await img.decode().catch(() => null);
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let colour = 0;
    for (let i = 0; i < d.length; i += 4) {
      const mx = Math.max(d[i], d[i+1], d[i+2]), mn = Math.min(d[i], d[i+1], d[i+2]);
      if (d[i+3] > 0 && mx - mn > 40) colour++;
    }
    out.push({w: c.width, h: c.height, colour: colour / (c.width * c.height)});
  }
  return out;
}"""

_BAD_TEXT = [
    (
        re.compile(
            r'Traceback \(most recent call last\)|\b\w*Error: |\b(User|Future|Deprecation|Runtime)Warning\b|^\s*warnings\.warn',
            re.M,
        ),
        'warning or traceback text',
    ),
    (re.compile(r'\bNaN\b|\bnan\b'), 'NaN'),
    (re.compile(r'\bNone\b'), 'None'),
    (re.compile(r'dtype: ?\w+'), 'dtype:'),
    (re.compile(r"\{'[a-z_]+': "), 'a raw dict'),
    (re.compile(r'\bvNone\b|DeploymentState\('), 'a repr'),
]


def _problems(page, path: Path, shot: Path) -> list[str]:
    scripts, out = [], []
    page.on(
        'request',
        lambda r: (
            scripts.append(r.url) if r.resource_type == 'script' or r.url.startswith(('http:', 'https:')) else None
        ),
    )
    page.goto(path.as_uri())
    page.wait_for_load_state('load')
    text = page.evaluate(_VISIBLE)
    for rx, what in _BAD_TEXT:
        out += [
            f"{what} in the visible text: …{text[max(m.start() - 60, 0) : m.end() + 40]!r}…" for m in rx.finditer(text)
        ][:3]
    out += page.evaluate(_CLIPPED, WIDTH)
    for i, im in enumerate(page.evaluate(_IMAGES)):
        if im['colour'] < 0.0005:
            out.append(f"chart {i + 1} ({im['w']}×{im['h']} px) has no data drawn (no coloured pixel)")
    for svg in page.query_selector_all('svg.trend'):
        if not svg.query_selector('rect, polyline'):
            out.append(f"index trend {svg.get_attribute('data-pipeline')} has no data")
    out += [f"requested {u}" for u in scripts]
    for a in page.query_selector_all('a[href]'):
        href = a.get_attribute('href')
        if (
            href
            and not href.startswith(('#', 'http:', 'https:', 'mailto:'))
            and not (path.parent / href.split('#')[0]).exists()
        ):
            out.append(f"broken link {href}")
    # the picture: where the results start (the first output of a report; the top of the index)
    page.evaluate("() => { const o = document.querySelector('.jp-OutputArea-output'); if (o) o.scrollIntoView(); }")
    page.screenshot(path=str(shot))
    return out


def _keep(shot: Path, name: str):
    "Copy the screenshot, shrunk to a 128-colour PNG, to $AUTOTRADER_SCREENSHOTS (e.g. docs/reports)."
    dest = os.environ.get('AUTOTRADER_SCREENSHOTS')
    if not dest:
        return
    from PIL import Image

    d = Path(dest)
    d.mkdir(parents=True, exist_ok=True)
    im = Image.open(shot).convert('RGB')
    im = im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS)
    im.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(d / f'{name}.png', optimize=True)


@pytest.mark.parametrize(
    'name',
    [
        'ingest',
        'ingest-up-to-date',
        'rollout',
        'index',
        'train',
        'evaluate',
        'health',
    ],
)
def test_report_reads_cleanly_in_a_browser(site, name, tmp_path):
    path = site['pages'][name]
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o044 == 0o044, f"{path.name} is mode {mode:o}: others cannot read it"
    with browser_page(tmp_path, WIDTH, HEIGHT) as page:
        problems = _problems(page, path, tmp_path / f'{name}.png')
    _keep(tmp_path / f'{name}.png', name)
    assert not problems, f"{name} report ({path}):\n  " + '\n  '.join(problems)


def test_run_all_says_what_happened(site):
    "Each stage's line says what it did in words; the up-to-date re-run says so."
    out = site['out']
    assert re.search(r'^ingest\s+ok\s+[\d.]+ s  stored [\d,]+ new bars of \d+ instrument', out, re.M), out
    assert re.search(r'^health\s+ok\s+[\d.]+ s  (ok|info|warning|critical|unknown)\b', out, re.M), out
    assert re.search(r'^rollout\s+ok\s+[\d.]+ s  \w+ of version \d+', out, re.M), out
    rec = json.loads(next(Path(site['pages']['ingest-up-to-date']).parent.glob('run.json')).read_text())
    assert rec['summary'].startswith('ingest: up to date: 0 new bars since '), rec['summary']
    for f in ('run.json', 'notebook.ipynb', 'report.html'):
        assert stat.S_IMODE((site['pages']['rollout'].parent / f).stat().st_mode) & 0o044 == 0o044, f
