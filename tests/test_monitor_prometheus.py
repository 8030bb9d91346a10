"""Prometheus: the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`: every alert
is tested), use the thresholds of the settings' defaults and only metrics the library writes; the text files the library
writes pass `promtool check metrics`; the Grafana dashboards query only those metrics; the runbook links are full URLs
on a configurable base. And end to end: a real Prometheus, Alertmanager and node-exporter with the project's own rules
and routing deliver "gateway down" and "collector down" to a webhook, and do not send held alerts as resolved.
promtool, prometheus, prometheus-alertmanager and prometheus-node-exporter come from Debian (.ci/run installs them):
in CI a missing binary fails the tests."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import yaml
from autotrader.config import SCHEMA, load_settings
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
        if p:
            return p
    if os.environ.get('CI'):
        pytest.fail(f"{names[0]} is not installed: .ci/run installs Debian's {package} package")
    pytest.skip(f'{names[0]} not installed (apt-get install {package})')


def promtool():
    return binary('promtool')


def run(*args, **kw):
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, **kw)


def test_promtool_check_rules():
    r = run('check', 'rules', str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'SUCCESS' in r.stdout


def test_promtool_test_rules():
    files = sorted(x.name for x in RULE_TESTS.parent.glob('*.test.yml'))  # data/model/pipelines, gateway, targets/held
    assert {RULE_TESTS.name, 'gateway-rules.test.yml', 'targets-rules.test.yml'} <= set(files)
    r = run('test', 'rules', *files, cwd=RULE_TESTS.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'SUCCESS' in r.stdout


def written_metrics(tmp_path) -> str:
    "The text of every .prom file the library writes, for a rich health run and a pipeline run."
    dr = pd.DataFrame(
        {
            'psi': [0.35, 0.1],
            'ks_stat': [0.2, 0.1],
            'js': [0.04, 0.0],
            'significant': [True, False],
            'level': ['critical', 'info'],
        },
        index=['ret_1', 'vol_24'],
    )
    fr = pd.DataFrame({'age_hours': [1.0, np.inf], 'behind_hours': [1.0, np.inf]}, index=['BTC-USD', 'SPY'])
    fr['level'] = ['ok', 'critical']
    fam = health_families(
        drift=dr,
        missing=pd.DataFrame({'missing_cur': [0.0, 0.2], 'level': ['ok', 'critical']}, index=['ret_1', 'vol_24']),
        ranges=pd.DataFrame({'out_of_range': [0.0, 0.02], 'level': ['ok', 'warning']}, index=['ret_1', 'vol_24']),
        correlation_max=0.4,
        freshness=fr,
        performance=dict(hit_rate=0.5, sharpe=1.2, signals=300, confidence_psi=0.1, importance_shift=0.2),
        levels={'drift': 'critical', 'missing': 'ok'},
        alerts=pd.DataFrame({'level': ['critical']}),
        undelivered=pd.DataFrame({'sink': ['slack']}),
        feature_set='basic@1-x',
    )
    a = write_families(tmp_path / 'autotrader_health.prom', fam)
    b = write_families(
        tmp_path / 'autotrader_pipeline_ingest.prom',
        pipeline_families(
            dict(
                pipeline='ingest',
                status='ok',
                ended='2024-01-01T02:00:00+00:00',
                duration_s=12.5,
                metrics={'rows_in': 10, 'rows_clean': 9},
            ),
            {},
            7200,
        ),
    )
    from autotrader.ops.scheduler import write_heartbeat

    c = write_heartbeat(load_settings(overrides={'data.dir': str(tmp_path / 'data')}, env={}), 3)
    return a.read_text() + b.read_text() + c.read_text() + gateway_metrics()


def gateway_metrics() -> str:
    "What a gateway replica exports on /metrics (one request of each kind recorded)."
    from prometheus_client import generate_latest
    from autotrader.deploy.gateway import _metrics

    reg, m = _metrics()
    m['requests'].labels('signal', 'BTC-USD', '7', 'green', '200').inc()
    m['errors'].labels('signal', 'BTC-USD', '7', 'green', 'model').inc()
    m['latency'].labels('signal', 'BTC-USD', '7', 'green').observe(0.002)
    m['fallbacks'].labels('BTC-USD', '7', '6').inc()
    m['ready'].set(1)
    m['generation'].set(3)
    m['loaded'].labels('green', '7').set(1)
    m['pending'].set(0)
    for k, v in dict(age_seconds=5.0, bars_behind=0, stale_seconds=0.0, slo_seconds=600.0, level=0).items():
        m[f'fresh_{k}'].labels('BTC-USD').set(v)
    m['rolled_back'].labels('canary', '8', 'error_rate 0.2 > 0.01').set(1.8e9)
    return generate_latest(reg).decode()


def test_written_files_pass_promtool_check_metrics(tmp_path):
    text = written_metrics(tmp_path)
    r = run('check', 'metrics', input=text)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not re.search(r' (NaN|[+-]?Inf)$', text, re.M)  # a figure that could not be computed is left out


def metric_names(expr: str) -> set:
    words = set(re.findall(r'\b(autotrader_[a-z_]+)\b', expr))
    return words


def test_rules_and_dashboards_use_written_metrics(tmp_path):
    text = written_metrics(tmp_path)
    known = set(re.findall(r'^(autotrader_[a-z_]+)[{ ]', text, re.M))
    rules = yaml.safe_load(RULES.read_text())
    used, recorded = set(), set()
    for g in rules['groups']:
        for rule in g['rules']:
            used |= metric_names(rule['expr'])
            if 'record' in rule and ':' not in rule['record']:
                recorded.add(rule['record'])  # a recording rule's own series (e.g. the scheduler's heartbeat age)
    used -= recorded
    for d in DASHBOARDS:
        js = json.loads(d.read_text())
        for p in js['panels']:
            for t in p.get('targets', []):
                used |= metric_names(t['expr'])
    assert used and used <= known, used - known
    assert [d.name for d in DASHBOARDS] == [
        'autotrader-data-health.json',
        'autotrader-deployments.json',
        'autotrader-model-performance.json',
        'autotrader-pipelines.json',
    ]
    for d in DASHBOARDS:
        js = json.loads(d.read_text())
        assert js['uid'] and js['panels'] and all(p['datasource']['uid'] == '${datasource}' for p in js['panels'])


def test_rule_thresholds_are_the_settings_defaults():
    """The data-health and model-check alerts read the library's decisions (no threshold of their own: one source of
    truth, and no page on what the library rated info); the thresholds the model-performance rules still show equal the
    defaults of their settings keys, and those rules are gated by the library's performance level."""
    exprs = {
        r['alert']: r['expr'] for g in yaml.safe_load(RULES.read_text())['groups'] for r in g['rules'] if 'alert' in r
    }
    d = lambda s, k: SCHEMA[s][k].default
    num = lambda e: [float(x) for x in re.findall(r'[<>]=?\s*(-?[0-9.]+)(?!\s*\*)', e)]
    decided = {
        'AutoTraderFeatureDriftCritical': 'max by (feature, feature_set) (autotrader_drift_level:held) == 2',
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
        'AutoTraderImportanceShiftWarning': 'max(autotrader_health_level:held{check="importance"}) == 1',
    }
    for a, e in decided.items():
        assert exprs[a] == e, a
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
    assert sorted(tested) == sorted(defined), (
        f'untested: {set(defined) - tested}; tested but not defined: {tested - set(defined)}'
    )
    assert quiet <= set(defined)
    print(f'{len(defined)} alerts, {len(tested)} tested')


def test_text_file_evidence_is_held_and_every_scrape_job_is_watched():
    """Every alert on text-file metrics reads the held series (`…:held` recording rules), never the raw series alone
    (which vanish with the collector and would send the alert as resolved); every job of the shipped Prometheus
    configuration has an absent() rule and is up-checked."""
    # a series derived while the collector sees its source, then held like the others: the scheduler's heartbeat age
    # (held frozen, not as a timestamp that would age while the collector is down)
    derived = {
        'autotrader_scheduler_heartbeat_age_seconds': 'time() - autotrader_scheduler_heartbeat_timestamp_seconds'
    }
    for r in rules_of('record'):
        if r['record'] in derived:
            assert r['expr'] == derived[r['record']], r
    records = [r for r in rules_of('record') if r['record'] not in derived]
    held = {r['record'].removesuffix(':held') for r in records}
    assert all(r['record'].endswith(':held') for r in records)
    assert {f'{d}' for d in derived} <= held  # every derived series is held too
    for r in records:
        m = r['record'].removesuffix(':held')
        assert (
            r['expr']
            == f'{m} or (last_over_time({m}[{r["expr"].split("[")[1].split("]")[0]}]) unless on (job, instance) up == 1)'
        )
    textfile = {'pipeline', 'health', 'drift', 'feature', 'data', 'model', 'alerts'}
    for r in rules_of('alert'):
        raw = {n for n in re.findall(r'\b(autotrader_[a-z_]+)\b(?!:held)(?![a-z_:])', r['expr'])}
        raw = {n for n in raw if n.split('_')[1] in textfile}
        raw -= {n for n in raw if f'absent_over_time({n}' in r['expr']}  # the overdue rules' absence branch
        assert not raw, f"{r['alert']} reads text-file series that vanish with the collector: {raw}"
    jobs = [j['job_name'] for j in yaml.safe_load(PROM_CONFIG.read_text())['scrape_configs']]
    absent = {r['alert']: r['expr'] for r in rules_of('alert')}['AutoTraderTargetAbsent']
    assert sorted(re.findall(r'absent\(up\{job="([^"]+)"\}\)', absent)) == sorted(jobs)
    assert {'autotrader-gateway', 'autotrader-textfiles', 'alertmanager', 'prometheus'} <= set(jobs)
    assert held >= {
        'autotrader_pipeline_status',
        'autotrader_pipeline_last_success_timestamp_seconds',
        'autotrader_health_last_run_timestamp_seconds',
    }


def test_runbook_urls_are_full_links_on_a_configurable_base(tmp_path):
    "The default base is the repository's runbooks (pyproject [project.urls]); runbook_base.py rewrites rules and tests alike."
    import importlib.util
    import tomllib

    spec = importlib.util.spec_from_file_location('runbook_base', RULES.parent / 'runbook_base.py')
    rb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rb)
    repo = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['urls']['Repository']
    assert rb.default_base() == RUNBOOK_BASE == f'{repo}/blob/main/ops/runbooks/alerts/'
    assert rb.bases() == {RUNBOOK_BASE}
    for r in rules_of('alert'):
        assert r['annotations']['runbook_url'] == f"{RUNBOOK_BASE}{r['alert']}.md"
    copies = []
    for f in rb.FILES:
        c = tmp_path / f.name
        c.write_text(f.read_text())
        copies.append(c)
    n = rb.set_base('https://wiki.example.com/runbooks/', copies)
    assert n == sum(f.read_text().count('runbook_url: "') for f in rb.FILES) and rb.bases(copies) == {
        'https://wiki.example.com/runbooks/'
    }
    r = run('check', 'rules', str(copies[0]))
    assert r.returncode == 0, r.stdout + r.stderr
    with pytest.raises(SystemExit):
        rb.set_base('wiki/runbooks', copies)


def _drift_frames():
    "A reference and a current window: `shift` moved by 0.4 sd (PSI ~0.17, KS ~0.16, JS ~0.04), `same` unchanged."
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({'shift': rng.normal(size=5000), 'same': rng.normal(size=5000)})
    cur = pd.DataFrame({'shift': rng.normal(size=2000) + 0.4, 'same': rng.normal(size=2000)})
    return ref, cur


def test_alerts_fire_exactly_on_the_library_decision(tmp_path):
    """The library's drift tables (a KS-only critical, a JS-only critical, an ok feature) go through the metric files it
    writes into `promtool test rules`: the rules fire for exactly the features the library rates critical or warning."""
    from autotrader.monitor.drift import drift_table, reference_chunks
    from autotrader.monitor.metrics import read_samples

    ref, cur = _drift_frames()
    off_chunks = reference_chunks(
        ref, 1000
    )  # five chunks of the reference: its band (5,000 rows against 2,000 current)
    off = dict(
        psi_warning=1e9,
        psi_critical=1e9,
        ks_warning=1e9,
        ks_critical=1e9,
        js_warning=1e9,
        js_critical=1e9,
    )
    tables = {
        'ks-only': drift_table(
            ref, cur, chunks=off_chunks, **{**off, 'ks_warning': 0.05, 'ks_critical': 0.1}
        ),  # KS alone decides
        'js-only': drift_table(
            ref, cur, chunks=off_chunks, **{**off, 'js_warning': 0.01, 'js_critical': 0.02}
        ),  # JS alone decides
        'warn-ks': drift_table(ref, cur, chunks=off_chunks, **{**off, 'ks_warning': 0.1, 'ks_critical': 0.5}),
    }  # a KS warning
    assert [t.loc['shift', 'level'] for t in tables.values()] == ['critical', 'critical', 'warning']
    assert all(t.loc['same', 'level'] == 'ok' for t in tables.values())
    assert all(t.loc['shift', 'psi'] < 0.3 for t in tables.values())  # PSI alone would not have fired
    series, want = [], {'critical': [], 'warning': []}
    for fs, t in tables.items():
        p = write_families(tmp_path / f'{fs}.prom', health_families(drift=t, feature_set=fs))
        for (name, labels), v in read_samples(p).items():
            if name.startswith('autotrader_drift_'):
                sel = ','.join(f'{k}="{x}"' for k, x in labels)
                series.append({'series': f'{name}{{{sel}}}', 'values': f'{v!r}x5'})
        for f, row in t.iterrows():
            if row.level in want:
                want[row.level].append(
                    {
                        'exp_labels': {'severity': row.level, 'feature': f, 'feature_set': fs},
                        'exp_annotations': {
                            'runbook_url': f"{RUNBOOK_BASE}AutoTraderFeatureDrift{row.level.title()}.md",
                            'summary': f"Feature {f} {'drifted' if row.level == 'critical' else 'is drifting'} ({row.level})",
                            'description': f"The health check rates {f} ({fs}) {row.level}: PSI {row.psi:.3f}, KS {row.ks_stat:.3f}, "
                            f"JS {row.js:.3f} (thresholds: [drift] in settings.ini; the health report names the statistic that crossed).",
                        },
                    }
                )
    test = {
        'rule_files': [str(RULES)],
        'evaluation_interval': '1m',
        'tests': [
            {
                'interval': '1m',
                'input_series': series,
                'alert_rule_test': [
                    {'eval_time': '2m', 'alertname': 'AutoTraderFeatureDriftCritical', 'exp_alerts': want['critical']},
                    {'eval_time': '2m', 'alertname': 'AutoTraderFeatureDriftWarning', 'exp_alerts': want['warning']},
                ],
            }
        ],
    }
    assert len(want['critical']) == 2 and len(want['warning']) == 1
    f = tmp_path / 'decision.test.yml'
    f.write_text(yaml.safe_dump(test, sort_keys=False))
    r = run('test', 'rules', str(f))
    assert r.returncode == 0, r.stdout + r.stderr
    # and the check is not vacuous: with an alert expected for the ok feature, promtool fails
    test['tests'][0]['alert_rule_test'][0]['exp_alerts'].append(
        {'exp_labels': {'severity': 'critical', 'feature': 'same', 'feature_set': 'ks-only'}}
    )
    f.write_text(yaml.safe_dump(test, sort_keys=False))
    assert run('test', 'rules', str(f)).returncode != 0


# ---------------------------------------------------------------- end to end: Prometheus + Alertmanager + node-exporter

GATEWAY_LIKE = """
import sys, time
from prometheus_client import start_http_server
from autotrader.deploy.gateway import _metrics, _zero_counters
reg, m = _metrics(); _zero_counters(m); m['ready'].set(1); m['started'].set(time.time())
start_http_server(int(sys.argv[1]), addr='127.0.0.1', registry=reg)
while True: time.sleep(60)
"""


def _http_json(url, timeout=5):
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _wait_for(cond, timeout, what, every=0.25):
    "Poll `cond` until it returns something truthy (machines are slow: the timeout is generous, never asserted)."
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except OSError:
            pass
        time.sleep(every)
    pytest.fail(f'gave up waiting for {what}')


def _notified(receiver, alertname, status='firing') -> list:
    "The alerts named `alertname` with `status` in every webhook notification received so far."
    return [
        a
        for r in list(receiver.requests)
        for a in r['json']['alerts']
        if a['labels'].get('alertname') == alertname and a['status'] == status
    ]


def test_end_to_end_gateway_and_collector_down_are_delivered_and_held_alerts_are_not_resolved(tmp_path):
    """A real Prometheus (the shipped prometheus.yml with 1 s intervals and 127.0.0.1 targets; the same rules file), a
    real Alertmanager (the shipped alertmanager.yml, webhook pointed at a receiver in a thread), a real node-exporter
    reading .prom files the library wrote, and a gateway-like process exporting the gateway's metrics. The failed
    pipeline and the drift the library rated critical are delivered, a feature 100 % missing that the library rated
    info is not. Then the gateway is killed (SIGKILL) and node-exporter stopped: AutoTraderGatewayNotReady and
    AutoTraderTextfileCollectorDown are delivered, and the firing text-file alerts are not sent as resolved although
    their series are gone."""
    import signal
    import subprocess
    import sys
    import time
    from local_servers import free_port
    from monitor_helpers import Receiver

    prometheus = binary('prometheus')
    alertmanager = binary('prometheus-alertmanager', 'alertmanager', package='prometheus-alertmanager')
    node_exporter = binary('prometheus-node-exporter', 'node_exporter', package='prometheus-node-exporter')
    t0 = time.monotonic()
    # the library writes the text files: ingest failed; the health check rates ret_1's drift critical and spread's
    # 100 % missing info (an OHLCV source never fills it)
    metrics = tmp_path / 'metrics'
    now = pd.Timestamp.now(tz='UTC')
    write_families(
        metrics / 'autotrader_pipeline_ingest.prom',
        pipeline_families(dict(pipeline='ingest', status='failed', ended=now.isoformat(), duration_s=5.0), {}, 7200),
    )
    write_families(
        metrics / 'autotrader_health.prom',
        health_families(
            drift=pd.DataFrame({'psi': [0.5, 0.01], 'level': ['critical', 'ok']}, index=['ret_1', 'vol_24']),
            missing=pd.DataFrame({'missing_cur': [1.0, 0.0], 'level': ['info', 'ok']}, index=['spread', 'vol_24']),
            levels={'drift': 'critical', 'missing': 'ok'},
            feature_set='standard@1-x',
            now=now,
        ),
    )
    ports = dict(prometheus=free_port(), alertmanager=free_port(), textfiles=free_port(), gateway=free_port())
    procs = {}

    def start(name, *cmd):
        procs[name] = subprocess.Popen(
            list(cmd),
            stdout=open(tmp_path / f'{name}.log', 'wb'),
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,
        )

    with Receiver() as receiver:
        try:
            am = yaml.safe_load(AM_CONFIG.read_text())  # the shipped routing; only the webhook's address changes
            hooks = [w for r in am['receivers'] for w in r.get('webhook_configs', [])]
            assert hooks and all(w['url'].endswith('/v1/alertmanager') for w in hooks)
            for w in hooks:
                w['url'] = receiver.url('/v1/alertmanager')
            (tmp_path / 'alertmanager.yml').write_text(yaml.safe_dump(am))
            cfg = yaml.safe_load(
                PROM_CONFIG.read_text()
            )  # the shipped jobs, rules and alerting; 1 s intervals, local targets
            cfg['global'] = {'scrape_interval': '1s', 'scrape_timeout': '1s', 'evaluation_interval': '1s'}
            cfg['rule_files'] = [str(RULES)]
            cfg['alerting']['alertmanagers'][0]['static_configs'][0]['targets'] = [f"127.0.0.1:{ports['alertmanager']}"]
            port_of = {
                'autotrader-textfiles': 'textfiles',
                'autotrader-gateway': 'gateway',
                'alertmanager': 'alertmanager',
                'prometheus': 'prometheus',
            }
            assert sorted(j['job_name'] for j in cfg['scrape_configs']) == sorted(port_of)
            for j in cfg['scrape_configs']:
                j['static_configs'] = [{'targets': [f"127.0.0.1:{ports[port_of[j['job_name']]]}"]}]
            (tmp_path / 'prometheus.yml').write_text(yaml.safe_dump(cfg))
            start(
                'alertmanager',
                alertmanager,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                '--cluster.listen-address=',
            )
            start('gateway', sys.executable, '-c', GATEWAY_LIKE, str(ports['gateway']))
            start(
                'node-exporter',
                node_exporter,
                f"--web.listen-address=127.0.0.1:{ports['textfiles']}",
                '--collector.disable-defaults',
                '--collector.textfile',
                f'--collector.textfile.directory={metrics}',
            )
            start(
                'prometheus',
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            )
            api = f"http://127.0.0.1:{ports['prometheus']}/api/v1"
            up = lambda: {
                r['metric']['job']: r['value'][1] for r in _http_json(f'{api}/query?query=up')['data']['result']
            }
            _wait_for(lambda: set(up().values()) == {'1'} and len(up()) == 4, 120, 'every target up')
            # 1. the library's critical decisions are delivered; its info (spread 100 % missing) pages nobody
            _wait_for(
                lambda: (
                    _notified(receiver, 'AutoTraderPipelineFailed')
                    and _notified(receiver, 'AutoTraderFeatureDriftCritical')
                ),
                120,
                'PipelineFailed and FeatureDriftCritical delivered',
            )
            # 2. the gateway killed, the collector stopped
            procs['gateway'].send_signal(signal.SIGKILL)
            procs['node-exporter'].terminate()
            procs['gateway'].wait(10)
            procs['node-exporter'].wait(10)
            t_kill = time.monotonic()
            gw = _wait_for(
                lambda: _notified(receiver, 'AutoTraderGatewayNotReady'), 180, 'AutoTraderGatewayNotReady delivered'
            )
            tf = _wait_for(
                lambda: _notified(receiver, 'AutoTraderTextfileCollectorDown'),
                180,
                'AutoTraderTextfileCollectorDown delivered',
            )
            detected = time.monotonic() - t_kill
            assert (
                gw[0]['labels']['instance'] == f"127.0.0.1:{ports['gateway']}"
                and gw[0]['labels']['severity'] == 'critical'
            )
            assert 'does not answer /metrics' in gw[0]['annotations']['description']
            assert gw[0]['annotations']['runbook_url'] == f'{RUNBOOK_BASE}AutoTraderGatewayNotReady.md'
            assert tf[0]['labels']['job'] == 'autotrader-textfiles'
            # 3. their evidence is gone, but the text-file alerts still fire: nothing was sent as resolved
            assert _http_json(f'{api}/query?query=autotrader_pipeline_status')['data']['result'] == []
            for name in ('AutoTraderPipelineFailed', 'AutoTraderFeatureDriftCritical'):
                assert not _notified(receiver, name, 'resolved'), f'{name} was sent as resolved'
            firing = {
                a['labels']['alertname']
                for a in _http_json(f'{api}/alerts')['data']['alerts']
                if a['state'] == 'firing'
            }
            assert {
                'AutoTraderPipelineFailed',
                'AutoTraderFeatureDriftCritical',
                'AutoTraderGatewayNotReady',
                'AutoTraderTextfileCollectorDown',
            } <= firing, firing
            active = {
                a['labels']['alertname']
                for a in _http_json(f"http://127.0.0.1:{ports['alertmanager']}/api/v2/alerts?active=true")
                if a['status']['state'] == 'active'
            }
            assert {'AutoTraderPipelineFailed', 'AutoTraderFeatureDriftCritical'} <= active, active
            # 4. no false page: the feature the library rated info never fired
            assert not any(n.startswith('AutoTraderFeatureMissing') for n in firing)
            assert not [
                a
                for r in receiver.requests
                for a in r['json']['alerts']
                if a['labels']['alertname'].startswith('AutoTraderFeatureMissing')
            ]
            print(
                f'end to end: killed -> both alerts delivered in {detected:.0f} s; whole test {time.monotonic() - t0:.0f} s'
            )
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.terminate()
            for p in procs.values():
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


_CHECK_OF = {
    'AutoTraderFeatureDrift': 'drift',
    'AutoTraderFeatureMissing': 'missing',
    'AutoTraderFeatureOutOfRange': 'range',
    'AutoTraderCorrelationChange': 'correlation',
    'AutoTraderDataStale': 'freshness',
    'AutoTraderHitRate': 'performance',
    'AutoTraderSharpe': 'performance',
    'AutoTraderConfidenceShift': 'confidence',
    'AutoTraderImportanceShift': 'importance',
}


def test_no_false_page_prometheus_fires_what_the_library_raised(tmp_path, monkeypatch):
    """A real health run of the standard feature set on sim (OHLCV) data — spread and the 720-bar regime features are
    100 % missing and rated info, ma_dist_200 is still warming up — then node-exporter and Prometheus with the shipped
    rules: per check, the alerts Prometheus fires are exactly the library's (same check, same worst level), per feature
    exactly the features the library rated warning or critical; nothing it rated info pages."""
    import subprocess
    import time
    from local_servers import free_port
    from autotrader.config import load_settings
    from autotrader.pipelines.ingest import ingest
    from autotrader.pipelines.health import run_health

    prometheus = binary('prometheus')
    node_exporter = binary('prometheus-node-exporter', 'node_exporter', package='prometheus-node-exporter')
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'settings.ini').write_text('[data]\nlookback_days = 12\n')
    st = load_settings(tmp_path / 'settings.ini', env={})
    ingest(settings=st, progress=False)
    r = run_health(st)
    assert r.missing.loc['spread', 'missing_cur'] == 1.0 and r.missing.loc['spread', 'level'] == 'info'
    rank = {'warning': 1, 'critical': 2}
    want = set()  # (alert name, feature or instrument) the library's tables call for
    for table, name in (
        (r.drift, 'AutoTraderFeatureDrift'),
        (r.missing, 'AutoTraderFeatureMissing'),
        (r.ranges, 'AutoTraderFeatureOutOfRange'),
        (r.freshness, 'AutoTraderDataStale'),
    ):
        want |= {(name + l.title(), str(i)) for i, l in table.level.items() if l in rank}
    worst = {}
    for a in r.alerts:
        worst[a.check] = max(worst.get(a.check, 0), rank[a.level])
    ports = dict(prometheus=free_port(), textfiles=free_port())
    cfg = yaml.safe_load(PROM_CONFIG.read_text())
    cfg['global'] = {'scrape_interval': '1s', 'scrape_timeout': '1s', 'evaluation_interval': '1s'}
    cfg['rule_files'] = [str(RULES)]
    cfg.pop('alerting')
    cfg['scrape_configs'] = [
        dict(
            j,
            static_configs=[
                {
                    'targets': [
                        f"127.0.0.1:{ports['textfiles' if j['job_name'] == 'autotrader-textfiles' else 'prometheus']}"
                    ]
                }
            ],
        )
        for j in cfg['scrape_configs']
        if j['job_name'] in ('autotrader-textfiles', 'prometheus')
    ]
    (tmp_path / 'prometheus.yml').write_text(yaml.safe_dump(cfg))
    log = open(tmp_path / 'servers.log', 'wb')
    procs = [
        subprocess.Popen(
            [
                node_exporter,
                f"--web.listen-address=127.0.0.1:{ports['textfiles']}",
                '--collector.disable-defaults',
                '--collector.textfile',
                f'--collector.textfile.directory={r.metrics_file.parent}',
            ],
            stdout=log,
            stderr=log,
        ),
        subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
            stdout=log,
            stderr=log,
        ),
    ]
    api = f"http://127.0.0.1:{ports['prometheus']}/api/v1"

    def fired():
        out = set()
        for a in _http_json(f'{api}/alerts')['data']['alerts']:
            name = a['labels']['alertname']
            if a['state'] == 'firing' and any(name.startswith(k) for k in _CHECK_OF):
                out.add((name, a['labels'].get('feature') or a['labels'].get('instrument') or ''))
        return out

    try:
        # the health file scraped and the rules evaluated on it (the held series exist), then the alerts settle
        _wait_for(
            lambda: _http_json(f'{api}/query?query=count(autotrader_feature_missing_level:held)')['data']['result'],
            60,
            'health metrics scraped',
        )
        t = time.monotonic()
        _wait_for(
            lambda: time.monotonic() - t > 3 and fired() >= want, 60, f'the alerts of the library\'s decisions {want}'
        )
        got = fired()
        assert {(n, k) for n, k in got if k} == want, f'Prometheus alone: {got - want}; library alone: {want - got}'
        per_check = {}
        for n, _ in got:
            c = next(v for k, v in _CHECK_OF.items() if n.startswith(k))
            per_check[c] = max(per_check.get(c, 0), 2 if n.endswith('Critical') else 1)
        assert per_check == worst, f'Prometheus {per_check} vs the library {worst}'
        assert not any(k in ('spread', 'spread_24') for _, k in got)
        print(f'library alerts {sorted(worst.items())}; Prometheus: {sorted(got)}')
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        log.close()
