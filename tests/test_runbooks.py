"ops/runbooks: one runbook per Prometheus alert rule (its runbook_url, a full link on the repository, points to it), and every `autotrader …` command quoted in the runbooks and docs parses with the real CLI."

import re
import shlex
from pathlib import Path

import yaml

from autotrader.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / 'ops' / 'prometheus' / 'autotrader-rules.yml'
RUNBOOKS = ROOT / 'ops' / 'runbooks'
SECTIONS = ['## What it means', '## How to confirm', '## How to fix', '## When and how to escalate']


def runbook_base() -> str:
    "A full link an on-call person can click: the repository's runbooks (pyproject [project.urls] Repository) by default."
    import tomllib

    repo = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['urls']['Repository'].rstrip('/')
    return f'{repo}/blob/main/ops/runbooks/alerts/'


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())['groups'] for r in g['rules'] if 'alert' in r]


def test_every_alert_rule_has_a_runbook_url_whose_file_exists():
    rs = rules()
    assert len(rs) >= 20
    missing = [r['alert'] for r in rs if not r.get('annotations', {}).get('runbook_url')]
    assert not missing, f'alert rules without a runbook_url annotation: {missing}'
    base = runbook_base()
    for r in rs:
        url = r['annotations']['runbook_url']
        assert url == f"{base}{r['alert']}.md", f"{r['alert']}: runbook_url {url!r}"
        f = RUNBOOKS / 'alerts' / f"{r['alert']}.md"
        assert f.is_file(), f"{r['alert']}: {f.relative_to(ROOT)} does not exist"
        text = f.read_text()
        assert text.startswith(f"# {r['alert']}\n"), f'{url} is not the runbook of {r["alert"]}'
        assert f"**Severity:** {r['labels']['severity']}" in text, f'{url}: severity differs from the rule'
        for s in SECTIONS:
            assert s in text, f'{url}: section {s!r} missing'


def test_no_runbook_without_a_rule_and_the_index_lists_them_all():
    alerts = {r['alert'] for r in rules()}
    files = {p.stem for p in (RUNBOOKS / 'alerts').glob('*.md')}
    assert files == alerts, f'runbooks without a rule: {files - alerts}; rules without a runbook: {alerts - files}'
    index = (RUNBOOKS / 'README.md').read_text()
    for a in alerts:
        assert f'(alerts/{a}.md)' in index, f'ops/runbooks/README.md does not list {a}'


def test_procedures_exist():
    for name in ('deployment', 'rollback', 'backfill', 'retraining', 'incident', 'disaster-recovery', 'secrets'):
        assert (RUNBOOKS / 'procedures' / f'{name}.md').is_file(), name


def test_relative_links_in_runbooks_resolve():
    for f in RUNBOOKS.rglob('*.md'):
        for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', f.read_text()):
            if '://' in target:
                continue
            assert (f.parent / target).exists(), f'{f.relative_to(ROOT)}: broken link {target}'


_SPAN = re.compile(r'`(autotrader [^`]+)`')
_FENCE = re.compile(r'```(bash|sh|console|shell|)\n(.*?)```', re.S)  # not ```text (usage synopses)


def quoted_commands(text: str) -> list[str]:
    "`autotrader …` commands in inline code and in fenced blocks (one per line, continuation lines joined, comments cut)."
    cmds = [m for m in _SPAN.findall(text)]
    for _, block in _FENCE.findall(text):
        block = block.replace('\\\n', ' ')
        for line in block.splitlines():
            line = line.strip()
            for part in re.split(r'\s*(?:&&|\|\||;)\s*', line):
                if part.startswith('autotrader '):
                    cmds.append(part)
    out = []
    for c in cmds:
        c = re.sub(r'\s+#.*$', '', c).strip()
        args = shlex.split(c)[1:]
        if not args or '…' in args or '...' in args:
            continue  # prose: "every `autotrader …` command"
        if '|' in c or re.search(r'\s\[', c):
            continue  # a usage synopsis: `autotrader serve [--port P]`
        out.append(c)
    return out


def _subcommands() -> set:
    import argparse

    return {n for a in _parser()._actions if isinstance(a, argparse._SubParsersAction) for n in a.choices}


def parses(cmd: str) -> bool:
    "The CLI accepts `cmd` (a bare `autotrader SUBCOMMAND`, naming a command in prose, only has to exist)."
    args = shlex.split(cmd)[1:]
    if len(args) == 1 and not args[0].startswith('-'):
        return args[0] in _subcommands()
    try:
        _parser().parse_args(args)
    except SystemExit as e:
        return e.code == 0
    return True


def documents() -> list[Path]:
    return sorted(RUNBOOKS.rglob('*.md')) + sorted((ROOT / 'docs').rglob('*.md')) + [ROOT / 'README.md']


def test_every_quoted_command_parses_with_the_real_cli():
    seen = {}
    for f in documents():
        for c in quoted_commands(f.read_text()):
            seen.setdefault(c, f.relative_to(ROOT).as_posix())
    bad = [f'{c}   ({where})' for c, where in seen.items() if not parses(c)]
    assert not bad, 'commands the CLI does not accept:\n' + '\n'.join(bad)
    joined = '\n'.join(seen)
    for must in (
        'autotrader archive verify',
        'autotrader store rebuild',
        'autotrader deploy rollback --to VERSION',
        'autotrader deploy bluegreen',
        'autotrader deploy canary',
        'autotrader deploy promote',
        'autotrader run ingest -p backfill=True',
        'autotrader schedule trigger',
    ):
        assert must in joined, f'no runbook shows {must!r}'
    assert len(seen) >= 25


def test_the_command_check_is_not_vacuous():
    text = "Run `autotrader deploy teleport` then\n```bash\nautotrader archive verify --fast\n```\n"
    cmds = quoted_commands(text)
    assert cmds == ['autotrader deploy teleport', 'autotrader archive verify --fast']
    assert not any(parses(c) for c in cmds)
    assert parses('autotrader archive verify --tmp-grace-hours 2') and parses('autotrader store rebuild --force')
    assert parses('autotrader run') and not parses('autotrader teleport')
