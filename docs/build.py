#!/usr/bin/env python3
"""Build the static documentation site from the repository: the README (home page), docs/*.md, the Markdown under
ops/ and benchmarks/, and every notebook in nbs/ (library modules and pipelines), rendered offline with nbconvert and
mistune (both already installed with the project). The site mirrors the repository's paths (`nbs/ops/85_recovery.ipynb`
→ `nbs/ops/85_recovery.html`), so the links written for GitHub work unchanged: links to .md / .ipynb pages point to
their .html, links to other repository files get a copy of the file, links to folders get a listing page.

Every relative link and image of every page is then checked against the built site; a broken one fails the build.

    python docs/build.py [--out site] [--root .]

Exit codes: 0 built, no broken link; 1 broken links (listed); 2 usage error."""
from __future__ import annotations
import argparse, html, os, re, shutil, sys, time
from pathlib import Path
from urllib.parse import unquote, urlsplit

MD_GLOBS = ['README.md', 'docs/*.md', 'ops/**/*.md', 'benchmarks/README.md']
NB_GLOBS = ['nbs/**/*.ipynb']
SKIP_PARTS = {'.ipynb_checkpoints', '.git', '.venv', 'node_modules', '_proc'}

CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --accent:#0969da; --bg2:#f6f8fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.55 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif; color:var(--fg); display:flex; }
nav { width:270px; min-height:100vh; padding:18px 14px; background:var(--bg2); border-right:1px solid var(--line);
      position:sticky; top:0; align-self:flex-start; max-height:100vh; overflow:auto; font-size:13.5px; }
nav .brand { font-weight:700; font-size:17px; display:block; margin-bottom:12px; color:var(--fg); text-decoration:none; }
nav h3 { font-size:11.5px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted); margin:16px 0 4px; }
nav ul { list-style:none; padding:0; margin:0; } nav li { margin:2px 0; }
nav a { color:var(--fg); text-decoration:none; } nav a:hover, nav a.current { color:var(--accent); }
main { flex:1; min-width:0; padding:24px 44px 60px; max-width:1100px; }
a { color:var(--accent); } h1,h2,h3 { line-height:1.25; } h1 { border-bottom:1px solid var(--line); padding-bottom:.3em; }
pre { background:var(--bg2); padding:12px; overflow:auto; border-radius:6px; font-size:13px; }
code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:90%; }
:not(pre) > code { background:var(--bg2); padding:.1em .35em; border-radius:4px; }
table { border-collapse:collapse; margin:12px 0; display:block; overflow:auto; }
th,td { border:1px solid var(--line); padding:5px 10px; vertical-align:top; } th { background:var(--bg2); }
img { max-width:100%; }
.source { color:var(--muted); font-size:12.5px; margin-bottom:8px; }
.cell { margin:10px 0; } .prompt { display:none; }
.code_cell .input_area { border-left:3px solid var(--accent); }
.output_area pre { background:#fff; border:1px solid var(--line); }
.rendered_html table, .output_html table { font-size:12.5px; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — AutoTrader</title><link rel="stylesheet" href="{root}assets/site.css"></head>
<body><nav>{nav}</nav><main><div class="source">{source}</div>
{body}
</main></body></html>
"""


def _iter(root: Path, globs) -> list[Path]:
    out = set()
    for g in globs:
        for p in root.glob(g):
            if p.is_file() and not (set(p.relative_to(root).parts) & SKIP_PARTS): out.add(p.relative_to(root))
    return sorted(out)


def _page_of(rel: Path) -> Path:
    "Site path of a source page: README.md at the root → index.html, else the same path with .html."
    return Path('index.html') if rel == Path('README.md') else rel.with_suffix('.html')


def _title_md(text: str, rel: Path) -> str:
    m = re.search(r'^#\s+(.+)$', text, re.M)
    return re.sub(r'[`*]', '', m.group(1)).strip() if m else rel.stem


def _title_nb(nb, rel: Path) -> str:
    for c in nb.cells:
        if c.cell_type == 'markdown':
            m = re.search(r'^#\s+(.+)$', c.source, re.M)
            if m: return f"{rel.stem} · {re.sub(r'[`*]', '', m.group(1)).strip()}"
    return rel.stem


def _markdown():
    import mistune
    return mistune.create_markdown(escape=False, plugins=['table', 'strikethrough', 'url'])


_EXPORTER = None
_OUTPUT_LINK = re.compile(r'''(<a\b[^>]*?\s)href=(["'])(?![a-z][a-z0-9+.-]*:|#)''', re.I)


def _notebook_html(path: Path):
    "The notebook as HTML (nbconvert's basic template). Relative links inside outputs are run-time artifacts (a report"
    "folder of a test run) that no site can hold: they become plain text."
    global _EXPORTER
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        for o in c.get('outputs', []):
            d = o.get('data', {})
            if 'text/html' in d:
                h = d['text/html'] if isinstance(d['text/html'], str) else ''.join(d['text/html'])
                d['text/html'] = _OUTPUT_LINK.sub(r'\1data-href=\2', h)
    if _EXPORTER is None:
        # clean_html (bleach) is most of nbconvert's time; these are the repository's own notebooks, not untrusted input
        _EXPORTER = HTMLExporter(template_name='basic', filters={'clean_html': lambda x: x.decode() if isinstance(x, bytes) else str(x)})
        _EXPORTER.exclude_input_prompt = _EXPORTER.exclude_output_prompt = True
    body, _ = _EXPORTER.from_notebook_node(nb)
    return nb, body


# href/src attributes of real tags only (not the text of highlighted code)
_REF = re.compile(r'''(?<=\s)(?P<attr>href|src)=(?P<q>["'])(?P<url>[^"'<>]*)(?P=q)(?=[^<>]*>)''')


def _is_local(url: str) -> bool:
    if not url or url.startswith(('#', 'data:', 'mailto:', 'javascript:')): return False
    s = urlsplit(url)
    return not s.scheme and not s.netloc


class Site:
    def __init__(self, root: Path, out: Path):
        self.root, self.out = root.resolve(), out.resolve()
        self.pages: dict[Path, dict] = {}        # site path → {source, title, body}
        self.copies: set[Path] = set()           # repository files linked from pages
        self.listings: set[Path] = set()         # repository folders linked from pages
        self.missing: list[str] = []

    # -------------------------------------------------------------- collect
    def collect(self):
        md = _markdown()
        for rel in _iter(self.root, MD_GLOBS):
            text = (self.root / rel).read_text(encoding='utf-8')
            self.pages[_page_of(rel)] = dict(source=rel, title=_title_md(text, rel), body=md(text), kind='md')
        for rel in _iter(self.root, NB_GLOBS):
            nb, body = _notebook_html(self.root / rel)
            self.pages[_page_of(rel)] = dict(source=rel, title=_title_nb(nb, rel), body=body, kind='nb')

    # -------------------------------------------------------------- links
    def _rewrite(self, page: Path, src: Path, body: str) -> str:
        "Point each relative link of `body` (written relative to the source file `src`) at its place in the site."
        def fix(m):
            url = m.group('url')
            if not _is_local(url): return m.group(0)
            s = urlsplit(url); path = unquote(s.path); frag = f'#{s.fragment}' if s.fragment else ''
            if not path: return m.group(0)
            target = (self.root / src.parent / path).resolve()
            try: rel = target.relative_to(self.root)
            except ValueError:
                self.missing.append(f'{src}: link {url} leaves the repository'); return m.group(0)
            if not target.exists():
                self.missing.append(f'{src}: link {url} → {rel} does not exist'); return m.group(0)
            if target.is_dir():
                readme = rel / 'README.md'
                if _page_of(readme) in self.pages: dest = _page_of(readme)
                else: self.listings.add(rel); dest = rel / 'index.html'
            elif target.suffix in ('.md', '.ipynb') and _page_of(rel) in self.pages: dest = _page_of(rel)
            else: self.copies.add(rel); dest = rel
            new = os.path.relpath(self.out / dest, (self.out / page).parent).replace(os.sep, '/')
            return f"{m.group('attr')}={m.group('q')}{html.escape(new, quote=True)}{frag}{m.group('q')}"
        return _REF.sub(fix, body)

    # -------------------------------------------------------------- navigation
    def _nav(self, page: Path) -> str:
        def link(dest: Path, label: str) -> str:
            href = os.path.relpath(self.out / dest, (self.out / page).parent).replace(os.sep, '/')
            cur = ' class="current"' if dest == page else ''
            return f'<li><a href="{href}"{cur}>{html.escape(label)}</a></li>'
        groups: dict[str, list[str]] = {}
        def add(group, dest, label):
            if dest in self.pages: groups.setdefault(group, []).append(link(dest, label))
        add('Guides', Path('docs/architecture.html'), 'Architecture')
        add('Guides', Path('docs/operations.html'), 'Operations')
        add('Guides', Path('ops/runbooks/README.html'), 'Runbooks')
        add('Guides', Path('ops/terraform/README.html'), 'Infrastructure (Terraform)')
        add('Guides', Path('benchmarks/README.html'), 'Benchmarks')
        for dest, p in sorted(self.pages.items(), key=lambda kv: str(kv[1]['source'])):
            src = p['source']
            if p['kind'] != 'nb': continue
            folder = src.parent.relative_to('nbs').as_posix()
            group = 'Pipelines' if folder == 'pipelines' else f"Library · {folder if folder != '.' else 'core'}"
            add(group, dest, src.stem)
        root = os.path.relpath(self.out / 'index.html', (self.out / page).parent).replace(os.sep, '/')
        parts = [f'<a class="brand" href="{root}">AutoTrader</a>']
        for g, items in groups.items(): parts.append(f'<h3>{html.escape(g)}</h3><ul>{"".join(items)}</ul>')
        return '\n'.join(parts)

    # -------------------------------------------------------------- write
    def write(self):
        if self.out.exists(): shutil.rmtree(self.out)
        (self.out / 'assets').mkdir(parents=True)
        css = CSS
        try:
            from pygments.formatters import HtmlFormatter
            css += HtmlFormatter().get_style_defs('.highlight')
        except ImportError: pass
        (self.out / 'assets' / 'site.css').write_text(css, encoding='utf-8')
        for page, p in self.pages.items():
            body = self._rewrite(page, p['source'], p['body'])
            root = os.path.relpath(self.out, (self.out / page).parent).replace(os.sep, '/') + '/'
            root = '' if root == './' else root
            doc = PAGE.format(title=html.escape(p['title']), root=root, nav=self._nav(page), body=body,
                              source=html.escape(p['source'].as_posix()))
            (self.out / page).parent.mkdir(parents=True, exist_ok=True)
            (self.out / page).write_text(doc, encoding='utf-8')
        for rel in sorted(self.copies):
            (self.out / rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(self.root / rel, self.out / rel)
        todo, done = sorted(self.listings), set()
        while todo:
            rel = todo.pop(0)
            if rel in done: continue
            done.add(rel)
            page = rel / 'index.html'
            items = []
            for child in sorted((self.root / rel).iterdir()):
                if child.name.startswith('.') or child.name in SKIP_PARTS: continue
                crel = child.relative_to(self.root)
                dest = _page_of(crel) if _page_of(crel) in self.pages else None
                if dest is None and child.is_dir() and any(str(p['source']).startswith(crel.as_posix() + '/') for p in self.pages.values()):
                    todo.append(crel); dest = crel / 'index.html'
                if dest is None: continue
                href = os.path.relpath(self.out / dest, self.out / rel).replace(os.sep, '/')
                items.append(f'<li><a href="{href}">{html.escape(child.name)}</a></li>')
            body = f'<h1>{html.escape(rel.as_posix())}/</h1><ul>{"".join(items)}</ul>'
            root = os.path.relpath(self.out, self.out / rel).replace(os.sep, '/') + '/'
            (self.out / page).parent.mkdir(parents=True, exist_ok=True)
            (self.out / page).write_text(PAGE.format(title=html.escape(rel.as_posix()), root=root, nav=self._nav(page),
                                                     body=body, source=html.escape(rel.as_posix() + '/')), encoding='utf-8')


def check_links(out: Path) -> list[str]:
    "Every relative href/src of every HTML page in `out` names a file that exists in `out`."
    out = out.resolve(); bad = []
    for f in sorted(out.rglob('*.html')):
        for m in _REF.finditer(f.read_text(encoding='utf-8')):
            url = html.unescape(m.group('url'))
            if not _is_local(url): continue
            path = unquote(urlsplit(url).path)
            if not path: continue
            target = (f.parent / path).resolve()
            if target.is_dir(): target = target / 'index.html'
            if not target.is_file(): bad.append(f'{f.relative_to(out)}: broken link {url}')
    return bad


def build(root='.', out='site') -> tuple[int, list[str]]:
    "Build the site; (pages written, problems) — problems are broken links in the sources or the output."
    site = Site(Path(root), Path(out))
    site.collect(); site.write()
    problems = sorted(set(site.missing)) + check_links(site.out)
    return len(site.pages), problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description='Build the AutoTrader documentation site (offline).')
    ap.add_argument('--out', default='site', help='output folder (replaced), default: site')
    ap.add_argument('--root', default=str(Path(__file__).resolve().parents[1]), help='repository root')
    a = ap.parse_args(argv)
    t = time.perf_counter()
    n, problems = build(a.root, a.out)
    if problems:
        print(f'{len(problems)} broken link(s):', *problems, sep='\n  ', file=sys.stderr)
        return 1
    print(f'{n} pages in {a.out} ({time.perf_counter() - t:.1f} s), no broken links')
    return 0


if __name__ == '__main__':
    sys.exit(main())
