"""The layer picture of docs/architecture.md, checked: arrows point down only (a package imports only from the layers
above it), and notebooks are numbered in dependency order (a module's notebook has a larger number than the notebook
of every module it imports at module level; an import inside a function, which breaks a cycle on purpose — a
registry, a façade — is checked by the layers only)."""

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    ('config',),
    ('clock', 'schema', 'files', 'tls'),
    ('data',),
    ('features',),
    ('train',),
    ('monitor',),
    ('deploy',),
    ('pipelines',),
    ('ops',),
    ('cli',),
]
RANK = {p: i for i, ps in enumerate(LAYERS) for p in ps}


def _module_name(f: Path) -> str:
    parts = list(f.relative_to(ROOT).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(f: Path, top_level: bool = False) -> set[str]:
    "Every autotrader module `f` imports, at module level or (unless `top_level`) inside functions."
    mod = _module_name(f)
    pkg = mod.split('.') if f.name == '__init__.py' else mod.split('.')[:-1]
    out = set()
    tree = ast.parse(f.read_text())
    for n in tree.body if top_level else ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            target = (
                '.'.join(pkg[: len(pkg) - n.level + 1] + [n.module or '']).strip('.') if n.level else (n.module or '')
            )
            if target.startswith('autotrader'):
                out.add(target)
                out |= {f'{target}.{a.name}' for a in n.names}  # `from autotrader.deploy import state`
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names if a.name.startswith('autotrader')}
    return out


def _modules() -> dict[str, Path]:
    return {_module_name(f): f for f in (ROOT / 'autotrader').rglob('*.py') if f.name != '_modidx.py'}


def _package(mod: str) -> str:
    parts = mod.split('.')
    return parts[1] if len(parts) > 1 else 'autotrader'


def test_arrows_point_down_only():
    mods = _modules()
    assert set(map(_package, mods)) - {'autotrader'} <= set(RANK), set(map(_package, mods)) - set(RANK)
    up = []
    for mod, f in mods.items():
        me = _package(mod)
        if me == 'autotrader':
            continue
        for t in _imports(f):
            other = _package(t)
            if other in ('autotrader', me) or t not in mods:
                continue
            if RANK[other] > RANK[me] or (RANK[other] == RANK[me] and other != me):
                up.append(f"{mod} imports {t} ({me} is layer {RANK[me]}, {other} layer {RANK[other]})")
    assert not up, '\n'.join(up)


def _notebooks() -> dict[str, tuple[int, Path]]:
    "module → (notebook number, notebook) from each notebook's `#| default_exp`."
    out = {}
    for nb in (ROOT / 'nbs').rglob('*.ipynb'):
        m = re.match(r'(\d+)_', nb.name)
        cells = json.loads(nb.read_text())['cells']
        exp = next(
            (
                re.search(r'#\|\s*default_exp\s+(\S+)', ''.join(c['source']))
                for c in cells
                if '#| default_exp' in ''.join(c['source'])
            ),
            None,
        )
        if exp and m:
            out['autotrader.' + exp.group(1)] = (int(m.group(1)), nb)
    return out


def test_notebooks_are_numbered_in_dependency_order():
    nbs, mods = _notebooks(), _modules()
    assert {m for m in mods if m not in ('autotrader', 'autotrader._modidx') and not m.endswith('__init__')} - set(
        nbs
    ) <= {p for p in mods if p.count('.') == 1 and (ROOT / p.replace('.', '/') / '__init__.py').exists()}, (
        'a module without a notebook'
    )
    wrong = []
    for mod, (n, nb) in nbs.items():
        for t in _imports(mods[mod], top_level=True):  # a lazy import inside a function breaks a cycle on purpose
            if t in nbs and t != mod and nbs[t][0] >= n:
                wrong.append(
                    f"{nb.relative_to(ROOT)} ({n}) imports {t} from {nbs[t][1].relative_to(ROOT)} ({nbs[t][0]})"
                )
    assert not wrong, '\n'.join(wrong)
