"""Prometheus: the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`: every alert
is tested), use the thresholds of the settings' defaults and only metrics the library writes; the text files the library
writes pass `promtool check metrics`; the Grafana dashboards query only those metrics; the runbook links are full URLs
on a configurable base. And end to end: a real Prometheus, Alertmanager and node-exporter with the project's own rules
and routing deliver "gateway down" and "collector down" to a webhook, and do not send held alerts as resolved.
promtool, prometheus, prometheus-alertmanager and prometheus-node-exporter come from Debian (.ci/run installs them):
in CI a missing binary fails the tests."""
import json, os, re, shutil, subprocess
from pathlib import Path
import numpy as np, pandas as pd, pytest, yaml
from autotrader.config import SCHEMA
from autotrader.monitor.metrics import health_families, pipeline_families, write_families

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / 'ops' / 'prometheus' / 'autotrader-rules.yml'
RULE_TESTS = ROOT / 'ops' / 'prometheus' / 'tests' / 'autotrader-rules.test.yml'
PROM_CONFIG = ROOT / 'ops' / 'docker' / 'prometheus.yml'
AM_CONFIG = ROOT / 'ops' / 'docker' / 'alertmanager.yml'
RUNBOOK_BASE = 'https://github.com/autotrader-kit/autotrader/blob/main/ops/runbooks/alerts/'
DASHBOARDS = sorted((ROOT / 'ops' / 'grafana').glob('*.json'))

def binary(*names, package='prometheus'):
    for n in names:
        p = shutil.which(n)
        if p: return p
    if os.environ.get('CI'): pytest.fail(f"{names[0]} is not installed: .ci/run installs Debian's {package} package")
    pytest.skip(f'{names[0]} not installed (apt-get install {package})')

def promtool(): return binary('promtool')

def run(*args, **kw):
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, **kw)

def test_promtool_check_rules():
    r = run('check', 'rules', str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'SUCCESS' in r.stdout

def test_promtool_test_rules():
    files = sorted(x.name for x in RULE_TESTS.parent.glob('*.test.yml'))     # data/model/pipelines, gateway, targets/held
    assert {RULE_TESTS.name, 'gateway-rules.test.yml', 'targets-rules.test.yml'} <= set(files)
    r = run('test', 'rules', *files, cwd=RULE_TESTS.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'SUCCESS' in r.stdout

def written_metrics(tmp_path) -> str:
    "The text of every .prom file the library writes, for a rich health run and a pipeline run."
    dr = pd.DataFrame({'psi': [0.35, 0.1], 'ks_stat': [0.2, 0.1], 'js': [0.04, 0.0], 'significant': [True, False],
                       'level': ['critical', 'info']}, index=['ret_1', 'vol_24'])
    fr = pd.DataFrame({'age_hours': [1.0, np.inf], 'behind_hours': [1.0, np.inf]}, index=['BTC-USD', 'SPY'])
    fr['level'] = ['ok', 'critical']
    fam = health_families(drift=dr, missing=pd.DataFrame({'missing_cur': [0.0, 0.2], 'level': ['ok', 'critical']}, index=['ret_1', 'vol_24']),
                          ranges=pd.DataFrame({'out_of_range': [0.0, 0.02], 'level': ['ok', 'warning']}, index=['ret_1', 'vol_24']), correlation_max=0.4,
                          freshness=fr, performance=dict(hit_rate=0.5, sharpe=1.2, signals=300, confidence_psi=0.1, importance_shift=0.2),
                          levels={'drift': 'critical', 'missing': 'ok'}, alerts=pd.DataFrame({'level': ['critical']}),
                          undelivered=pd.DataFrame({'sink': ['slack']}), feature_set='basic@1-x')
    a = write_families(tmp_path / 'autotrader_health.prom', fam)
    b = write_families(tmp_path / 'autotrader_pipeline_ingest.prom', pipeline_families(
        dict(pipeline='ingest', status='ok', ended='2024-01-01T02:00:00+00:00', duration_s=12.5, metrics={'rows_in': 10, 'rows_clean': 9}), {}, 7200))
    return a.read_text() + b.read_text() + gateway_metrics()

def gateway_metrics() -> str:
    "What a gateway replica exports on /metrics (one request of each kind recorded)."
    from prometheus_client import generate_latest
    from autotrader.deploy.gateway import _metrics
    reg, m = _metrics()
    m['requests'].labels('signal', 'BTC-USD', '7', 'green', '200').inc(); m['errors'].labels('signal', 'BTC-USD', '7', 'green', 'model').inc()
    m['latency'].labels('signal', 'BTC-USD', '7', 'green').observe(0.002); m['fallbacks'].labels('BTC-USD', '7', '6').inc()
    m['ready'].set(1); m['generation'].set(3); m['loaded'].labels('green', '7').set(1); m['pending'].set(0)
    return generate_latest(reg).decode()

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
    """The data-health and model-check alerts read the library's decisions (no threshold of their own: one source of
    truth, and no page on what the library rated info); the thresholds the model-performance rules still show equal the
    defaults of their settings keys, and those rules are gated by the library's performance level."""
    exprs = {r['alert']: r['expr'] for g in yaml.safe_load(RULES.read_text())['groups'] for r in g['rules'] if 'alert' in r}
    d = lambda s, k: SCHEMA[s][k].default
    num = lambda e: [float(x) for x in re.findall(r'[<>]=?\s*(-?[0-9.]+)(?!\s*\*)', e)]
    decided = {'AutoTraderFeatureDriftCritical': 'max by (feature, feature_set) (autotrader_drift_level:held) == 2',
               'AutoTraderFeatureDriftWarning': 'max by (feature, feature_set) (autotrader_drift_level:held) == 1',
               'AutoTraderFeatureMissingCritical': 'max by (feature, feature_set) (autotrader_feature_missing_level:held) == 2',
               'AutoTraderFeatureMissingWarning': 'max by (feature, feature_set) (autotrader_feature_missing_level:held) == 1',
               'AutoTraderFeatureOutOfRangeCritical': 'max by (feature, feature_set) (autotrader_feature_out_of_range_level:held) == 2',
               'AutoTraderFeatureOutOfRangeWarning': 'max by (feature, feature_set) (autotrader_feature_out_of_range_level:held) == 1',
               'AutoTraderDataStaleCritical': 'max by (instrument) (autotrader_data_freshness_level:held) == 2',
               'AutoTraderDataStaleWarning': 'max by (instrument) (autotrader_data_freshness_level:held) == 1',
               'AutoTraderCorrelationChangeCritical': 'max(autotrader_health_level:held{check="correlation"}) == 2',
               'AutoTraderCorrelationChangeWarning': 'max(autotrader_health_level:held{check="correlation"}) == 1',
               'AutoTraderConfidenceShiftCritical': 'max(autotrader_health_level:held{check="confidence"}) == 2',
               'AutoTraderImportanceShiftCritical': 'max(autotrader_health_level:held{check="importance"}) == 2',
               'AutoTraderImportanceShiftWarning': 'max(autotrader_health_level:held{check="importance"}) == 1'}
    for a, e in decided.items(): assert exprs[a] == e, a
    for a in ('AutoTraderHitRateCritical', 'AutoTraderSharpeCritical'):
        assert 'max(autotrader_health_level:held{check="performance"}) == 2' in exprs[a]
    for a in ('AutoTraderHitRateWarning', 'AutoTraderSharpeWarning'):
        assert 'max(autotrader_health_level:held{check="performance"}) >= 1' in exprs[a]
    assert d('health', 'hit_rate_critical') in num(exprs['AutoTraderHitRateCritical'])
    assert d('health', 'hit_rate_warning') in num(exprs['AutoTraderHitRateWarning'])
    assert d('health', 'min_signals') in num(exprs['AutoTraderHitRateCritical'])
    assert d('health', 'sharpe_critical') in num(exprs['AutoTraderSharpeCritical'])
    assert d('health', 'sharpe_warning') in num(exprs['AutoTraderSharpeWarning'])


def rules_of(kind: str) -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())['groups'] for r in g['rules'] if kind in r]

def test_every_alert_has_a_promtool_test():
    "Count of alerts defined == count of alerts a promtool test expects to fire (an `exp_alerts: []` case alone does not count)."
    defined = [r['alert'] for r in rules_of('alert')]
    tested, quiet = set(), set()
    for f in sorted(RULE_TESTS.parent.glob('*.test.yml')):
        for t in yaml.safe_load(f.read_text())['tests']:
            for a in t.get('alert_rule_test', []):
                (tested if a.get('exp_alerts') else quiet).add(a['alertname'])
    assert len(defined) == len(set(defined)) >= 31
    assert sorted(tested) == sorted(defined), f'untested: {set(defined) - tested}; tested but not defined: {tested - set(defined)}'
    assert quiet <= set(defined)
    print(f'{len(defined)} alerts, {len(tested)} tested')

def test_text_file_evidence_is_held_and_every_scrape_job_is_watched():
    """Every alert on text-file metrics reads the held series (`…:held` recording rules), never the raw series alone
    (which vanish with the collector and would send the alert as resolved); every job of the shipped Prometheus
    configuration has an absent() rule and is up-checked."""
    held = {r['record'].removesuffix(':held') for r in rules_of('record')}
    assert all(r['record'].endswith(':held') for r in rules_of('record'))
    for r in rules_of('record'):
        m = r['record'].removesuffix(':held')
        assert r['expr'] == f'{m} or (last_over_time({m}[{r["expr"].split("[")[1].split("]")[0]}]) unless on (job, instance) up == 1)'
    textfile = {'pipeline', 'health', 'drift', 'feature', 'data', 'model', 'alerts'}
    for r in rules_of('alert'):
        raw = {n for n in re.findall(r'\b(autotrader_[a-z_]+)\b(?!:held)(?![a-z_:])', r['expr'])}
        raw = {n for n in raw if n.split('_')[1] in textfile}
        raw -= {n for n in raw if f'absent_over_time({n}' in r['expr']}         # the overdue rules' absence branch
        assert not raw, f"{r['alert']} reads text-file series that vanish with the collector: {raw}"
    jobs = [j['job_name'] for j in yaml.safe_load(PROM_CONFIG.read_text())['scrape_configs']]
    absent = {r['alert']: r['expr'] for r in rules_of('alert')}['AutoTraderTargetAbsent']
    assert sorted(re.findall(r'absent\(up\{job="([^"]+)"\}\)', absent)) == sorted(jobs)
    assert {'autotrader-gateway', 'autotrader-textfiles', 'alertmanager', 'prometheus'} <= set(jobs)
    assert held >= {'autotrader_pipeline_status', 'autotrader_pipeline_last_success_timestamp_seconds', 'autotrader_health_last_run_timestamp_seconds'}

def test_runbook_urls_are_full_links_on_a_configurable_base(tmp_path):
    "The default base is the repository's runbooks (pyproject [project.urls]); runbook_base.py rewrites rules and tests alike."
    import importlib.util, tomllib
    spec = importlib.util.spec_from_file_location('runbook_base', RULES.parent / 'runbook_base.py')
    rb = importlib.util.module_from_spec(spec); spec.loader.exec_module(rb)
    repo = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['urls']['Repository']
    assert rb.default_base() == RUNBOOK_BASE == f'{repo}/blob/main/ops/runbooks/alerts/'
    assert rb.bases() == {RUNBOOK_BASE}
    for r in rules_of('alert'): assert r['annotations']['runbook_url'] == f"{RUNBOOK_BASE}{r['alert']}.md"
    copies = []
    for f in rb.FILES:
        c = tmp_path / f.name; c.write_text(f.read_text()); copies.append(c)
    n = rb.set_base('https://wiki.example.com/runbooks/', copies)
    assert n == sum(f.read_text().count('runbook_url: "') for f in rb.FILES) and rb.bases(copies) == {'https://wiki.example.com/runbooks/'}
    r = run('check', 'rules', str(copies[0]))
    assert r.returncode == 0, r.stdout + r.stderr
    with pytest.raises(SystemExit): rb.set_base('wiki/runbooks', copies)


def _drift_frames():
    "A reference and a current window: `shift` moved by 0.4 sd (PSI ~0.17, KS ~0.16, JS ~0.04), `same` unchanged."
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({'shift': rng.normal(size=5000), 'same': rng.normal(size=5000)})
    cur = pd.DataFrame({'shift': rng.normal(size=2000) + 0.4, 'same': rng.normal(size=2000)})
    return ref, cur

def test_alerts_fire_exactly_on_the_library_decision(tmp_path):
    """The library's drift tables (a KS-only critical, a JS-only critical, an ok feature) go through the metric files it
    writes into `promtool test rules`: the rules fire for exactly the features the library rates critical or warning."""
    from autotrader.monitor.drift import drift_table
    from autotrader.monitor.metrics import read_samples
    ref, cur = _drift_frames()
    off = dict(psi_warning=1e9, psi_critical=1e9, ks_warning=1e9, ks_critical=1e9, js_warning=1e9, js_critical=1e9)
    tables = {'ks-only': drift_table(ref, cur, **{**off, 'ks_warning': 0.05, 'ks_critical': 0.1}),     # KS alone decides
              'js-only': drift_table(ref, cur, **{**off, 'js_warning': 0.01, 'js_critical': 0.02}),    # JS alone decides
              'warn-ks': drift_table(ref, cur, **{**off, 'ks_warning': 0.1, 'ks_critical': 0.5})}      # a KS warning
    assert [t.loc['shift', 'level'] for t in tables.values()] == ['critical', 'critical', 'warning']
    assert all(t.loc['same', 'level'] == 'ok' for t in tables.values())
    assert all(t.loc['shift', 'psi'] < 0.3 for t in tables.values())        # PSI alone would not have fired
    series, want = [], {'critical': [], 'warning': []}
    for fs, t in tables.items():
        p = write_families(tmp_path / f'{fs}.prom', health_families(drift=t, feature_set=fs))
        for (name, labels), v in read_samples(p).items():
            if name.startswith('autotrader_drift_'):
                sel = ','.join(f'{k}="{x}"' for k, x in labels)
                series.append({'series': f'{name}{{{sel}}}', 'values': f'{v!r}x5'})
        for f, row in t.iterrows():
            if row.level in want:
                want[row.level].append({'exp_labels': {'severity': row.level, 'feature': f, 'feature_set': fs}, 'exp_annotations': {
                    'runbook_url': f"{RUNBOOK_BASE}AutoTraderFeatureDrift{row.level.title()}.md",
                    'summary': f"Feature {f} {'drifted' if row.level == 'critical' else 'is drifting'} ({row.level})",
                    'description': f"The health check rates {f} ({fs}) {row.level}: PSI {row.psi:.3f}, KS {row.ks_stat:.3f}, "
                                   f"JS {row.js:.3f} (thresholds: [drift] in settings.ini; the health report names the statistic that crossed)."}})
    test = {'rule_files': [str(RULES)], 'evaluation_interval': '1m', 'tests': [{'interval': '1m', 'input_series': series,
            'alert_rule_test': [{'eval_time': '2m', 'alertname': 'AutoTraderFeatureDriftCritical', 'exp_alerts': want['critical']},
                                {'eval_time': '2m', 'alertname': 'AutoTraderFeatureDriftWarning', 'exp_alerts': want['warning']}]}]}
    assert len(want['critical']) == 2 and len(want['warning']) == 1
    f = tmp_path / 'decision.test.yml'; f.write_text(yaml.safe_dump(test, sort_keys=False))
    r = run('test', 'rules', str(f))
    assert r.returncode == 0, r.stdout + r.stderr
    # and the check is not vacuous: with an alert expected for the ok feature, promtool fails
    test['tests'][0]['alert_rule_test'][0]['exp_alerts'].append({'exp_labels': {'severity': 'critical', 'feature': 'same', 'feature_set': 'ks-only'}})
    f.write_text(yaml.safe_dump(test, sort_keys=False))
    assert run('test', 'rules', str(f)).returncode != 0
