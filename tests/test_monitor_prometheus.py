"""Prometheus: the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`), use the
thresholds of the settings' defaults and only metrics the library writes; the text files the library writes pass
`promtool check metrics`; the Grafana dashboards query only those metrics.
promtool comes from Debian's `prometheus` package (.ci/run installs it): in CI a missing promtool fails the tests."""
import json, os, re, shutil, subprocess
from pathlib import Path
import numpy as np, pandas as pd, pytest, yaml
from autotrader.config import SCHEMA
from autotrader.monitor.metrics import health_families, pipeline_families, write_families

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / 'ops' / 'prometheus' / 'autotrader-rules.yml'
RULE_TESTS = ROOT / 'ops' / 'prometheus' / 'tests' / 'autotrader-rules.test.yml'
DASHBOARDS = sorted((ROOT / 'ops' / 'grafana').glob('*.json'))

def promtool():
    p = shutil.which('promtool')
    if p: return p
    if os.environ.get('CI'): pytest.fail("promtool is not installed: .ci/run installs Debian's prometheus package")
    pytest.skip('promtool not installed (apt-get install prometheus)')

def run(*args, **kw):
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, **kw)

def test_promtool_check_rules():
    r = run('check', 'rules', str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'SUCCESS' in r.stdout

def test_promtool_test_rules():
    r = run('test', 'rules', str(RULE_TESTS.name), cwd=RULE_TESTS.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'SUCCESS' in r.stdout

def written_metrics(tmp_path) -> str:
    "The text of every .prom file the library writes, for a rich health run and a pipeline run."
    dr = pd.DataFrame({'psi': [0.35, 0.1], 'ks_stat': [0.2, 0.1], 'js': [0.04, 0.0], 'significant': [True, False]}, index=['ret_1', 'vol_24'])
    fr = pd.DataFrame({'age_hours': [1.0, np.inf], 'behind_hours': [1.0, np.inf]}, index=['BTC-USD', 'SPY'])
    fam = health_families(drift=dr, missing=pd.DataFrame({'missing_cur': [0.0, 0.2]}, index=['ret_1', 'vol_24']),
                          ranges=pd.DataFrame({'out_of_range': [0.0, 0.02]}, index=['ret_1', 'vol_24']), correlation_max=0.4,
                          freshness=fr, performance=dict(hit_rate=0.5, sharpe=1.2, signals=300, confidence_psi=0.1, importance_shift=0.2),
                          levels={'drift': 'critical', 'missing': 'ok'}, alerts=pd.DataFrame({'level': ['critical']}),
                          undelivered=pd.DataFrame({'sink': ['slack']}), feature_set='basic@1-x')
    a = write_families(tmp_path / 'autotrader_health.prom', fam)
    b = write_families(tmp_path / 'autotrader_pipeline_ingest.prom', pipeline_families(
        dict(pipeline='ingest', status='ok', ended='2024-01-01T02:00:00+00:00', duration_s=12.5, metrics={'rows_in': 10, 'rows_clean': 9}), {}, 7200))
    return a.read_text() + b.read_text()

def test_written_files_pass_promtool_check_metrics(tmp_path):
    text = written_metrics(tmp_path)
    r = run('check', 'metrics', input=text)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not re.search(r' (NaN|[+-]?Inf)$', text, re.M)               # a figure that could not be computed is left out

def metric_names(expr: str) -> set:
    words = set(re.findall(r'\b(autotrader_[a-z_]+)\b', expr))
    return words

def test_rules_and_dashboards_use_written_metrics(tmp_path):
    text = written_metrics(tmp_path)
    known = set(re.findall(r'^(autotrader_[a-z_]+)[{ ]', text, re.M))
    rules = yaml.safe_load(RULES.read_text())
    used = set()
    for g in rules['groups']:
        for rule in g['rules']: used |= metric_names(rule['expr'])
    for d in DASHBOARDS:
        js = json.loads(d.read_text())
        for p in js['panels']:
            for t in p.get('targets', []): used |= metric_names(t['expr'])
    assert used and used <= known, used - known
    assert [d.name for d in DASHBOARDS] == ['autotrader-data-health.json', 'autotrader-deployments.json',
                                            'autotrader-model-performance.json', 'autotrader-pipelines.json']
    for d in DASHBOARDS:
        js = json.loads(d.read_text())
        assert js['uid'] and js['panels'] and all(p['datasource']['uid'] == '${datasource}' for p in js['panels'])

def test_rule_thresholds_are_the_settings_defaults():
    "Each threshold the rules hard-code equals the default of its settings key."
    exprs = {r['alert']: r['expr'] for g in yaml.safe_load(RULES.read_text())['groups'] for r in g['rules'] if 'alert' in r}
    d = lambda s, k: SCHEMA[s][k].default
    num = lambda e: [float(x) for x in re.findall(r'[<>]=?\s*(-?[0-9.]+)(?!\s*\*)', e)]
    assert d('drift', 'psi_critical') in num(exprs['AutoTraderFeatureDriftCritical'])
    assert {d('drift', 'psi_warning'), d('drift', 'psi_critical')} <= set(num(exprs['AutoTraderFeatureDriftWarning']))
    assert d('quality', 'missing_critical') in num(exprs['AutoTraderFeatureMissingCritical'])
    assert {d('quality', 'missing_warning'), d('quality', 'missing_critical')} <= set(num(exprs['AutoTraderFeatureMissingWarning']))
    assert d('quality', 'range_critical') in num(exprs['AutoTraderFeatureOutOfRangeCritical'])
    assert d('quality', 'range_warning') in num(exprs['AutoTraderFeatureOutOfRangeWarning'])
    assert d('quality', 'corr_critical') in num(exprs['AutoTraderCorrelationChangeCritical'])
    assert d('quality', 'corr_warning') in num(exprs['AutoTraderCorrelationChangeWarning'])
    assert f"> {d('quality', 'freshness_critical_hours'):g} * 3600" in exprs['AutoTraderDataStaleCritical']
    assert f"> {d('quality', 'freshness_warning_hours'):g} * 3600" in exprs['AutoTraderDataStaleWarning']
    assert d('health', 'hit_rate_critical') in num(exprs['AutoTraderHitRateCritical'])
    assert d('health', 'hit_rate_warning') in num(exprs['AutoTraderHitRateWarning'])
    assert d('health', 'min_signals') in num(exprs['AutoTraderHitRateCritical'])
    assert d('health', 'sharpe_critical') in num(exprs['AutoTraderSharpeCritical'])
    assert d('health', 'sharpe_warning') in num(exprs['AutoTraderSharpeWarning'])
    assert d('health', 'importance_critical') in num(exprs['AutoTraderImportanceShiftCritical'])
    assert d('health', 'importance_warning') in num(exprs['AutoTraderImportanceShiftWarning'])
