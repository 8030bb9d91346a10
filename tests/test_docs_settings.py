"""The README's settings are the settings: every `[section] key` that README.md or docs/*.md names exists in the
schema, and the warm-up figures the README gives are the ones the feature sets compute."""

import re
from pathlib import Path
import pytest
from autotrader.config import SCHEMA

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
NAMED = re.compile(r'`\[([a-z_]+)\] ([a-z_][a-z0-9_]*)`')  # `[section] key`, as the docs write a setting


def named_settings():
    for f in DOCS:
        for i, line in enumerate(f.read_text(encoding='utf-8').splitlines(), 1):
            for m in NAMED.finditer(line):
                yield f.relative_to(ROOT), i, *m.groups()


def test_docs_name_settings_at_all():
    assert sum(1 for _ in named_settings()) > 20


@pytest.mark.parametrize('where,line,section,key', list(named_settings()), ids=lambda x: str(x))
def test_every_setting_the_docs_name_exists(where, line, section, key):
    assert section in SCHEMA, f"{where}:{line} names section [{section}], which does not exist"
    assert key in SCHEMA[section], (
        f"{where}:{line} names [{section}] {key}, which does not exist; [{section}] has {', '.join(SCHEMA[section])}"
    )


def first_defined(name: str) -> int:
    "Bars of history before every column of feature set `name` that the sim source can fill is defined."
    from autotrader.data.connectors import sim_bars
    from autotrader.features.basic import feature_set

    b = sim_bars('BTC-USD', 'crypto', '1h', '2024-01-01', '2024-03-01', seed=1, outage_rate=0.0)
    fs = feature_set(name)
    f = fs.compute(b)
    cols = [c for c in fs.columns if f[c].notna().any()]  # spread: only from sources with bid/ask
    return int(f[cols].notna().all(axis=1).to_numpy().argmax())


def test_readme_warmup_figures_are_computed():
    text = ' '.join((ROOT / 'README.md').read_text(encoding='utf-8').split())
    n = first_defined('standard')
    assert f"needs {n:,} bars of history before every column is defined ({round(n / 24)} days of hourly bars" in text, n
    assert f"5 columns, defined after {first_defined('basic')} bars" in text
