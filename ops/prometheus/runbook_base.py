"""Show or change the base of every alert's `runbook_url` (rules and their promtool tests, in place).

    python ops/prometheus/runbook_base.py                    # print the base in use
    python ops/prometheus/runbook_base.py --default          # the repository's runbooks (pyproject [project.urls] Repository)
    python ops/prometheus/runbook_base.py https://wiki.example.com/autotrader/runbooks/

Each alert's runbook_url is <base><AlertName>.md; the runbooks themselves are ops/runbooks/alerts/<AlertName>.md.
Standard library only: runs wherever the rules are deployed.
"""
import re, sys, tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = [HERE / 'autotrader-rules.yml', *sorted((HERE / 'tests').glob('*.test.yml'))]
_URL = re.compile(r'(runbook_url: ")([^"]*?)(AutoTrader\w+\.md")')

def default_base(pyproject: Path = HERE.parents[1] / 'pyproject.toml') -> str:
    "The repository's runbooks as files: [project.urls] Repository + /blob/main/ops/runbooks/alerts/."
    repo = tomllib.loads(pyproject.read_text())['project']['urls']['Repository'].rstrip('/')
    return f'{repo}/blob/main/ops/runbooks/alerts/'

def bases(files=FILES) -> set:
    "Every base found in the files."
    return {m.group(2) for f in files for m in _URL.finditer(f.read_text())}

def set_base(base: str, files=FILES) -> int:
    "Rewrite every runbook_url to `base`; returns the number of URLs."
    if not re.match(r'^https?://\S+/$', base): raise SystemExit(f"{base!r}: give an http(s) URL ending with '/'")
    n = 0
    for f in files:
        text, k = _URL.subn(lambda m: m.group(1) + base + m.group(3), f.read_text())
        f.write_text(text); n += k
    return n

if __name__ == '__main__':
    args = sys.argv[1:]
    if not args: print('\n'.join(sorted(bases()))); sys.exit(0)
    base = default_base() if args == ['--default'] else args[0]
    print(f'{set_base(base)} runbook URLs now start with {base}')
