"""Fast unit tests of the runner's helpers and the Airflow DAG export (no Airflow, no papermill except one tiny run):
refused parameters and what the message names, the reports index, the terminal status line, run summaries and alerts,
and the text of the DAG files."""

import io
import json
import logging
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autotrader.config import load_settings
from autotrader.ops import runner
from autotrader.ops.airflow_dags import PRELUDE, _ecs, _run_args, _window, dag_source, metric_is_true, run_task
from autotrader.ops.lifecycle import PipelineSpec, pipeline_specs
from autotrader.ops.runner import (
    PipelineError,
    list_pipelines,
    pipeline_path,
    run_alerts,
    run_pipeline,
    run_summary,
    write_index,
)

KS = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}


def _notebook(path, *sources, tag=True):
    cells = [new_code_cell(s) for s in sources]
    if tag and cells:
        cells[0].metadata['tags'] = ['parameters']
    nbformat.write(new_notebook(cells=[new_markdown_cell('# a pipeline')] + cells, metadata=KS), path)
    return path


# ---------------------------------------------------------------- pipelines, run ids and parameters


def test_pipeline_path_of_a_name_a_notebook_file_or_neither(tmp_path):
    assert {'ingest', 'train', 'evaluate', 'rollout', 'health'} <= set(list_pipelines())
    assert pipeline_path('ingest').name == 'ingest.ipynb' and pipeline_path('ingest').is_file()
    nb = _notebook(tmp_path / 'mine.ipynb', 'x = 1')
    assert pipeline_path(str(nb)) == nb.resolve()
    with pytest.raises(PipelineError, match=r'notebook not found: .*missing\.ipynb'):
        pipeline_path(str(tmp_path / 'missing.ipynb'))
    with pytest.raises(PipelineError, match=r"unknown pipeline 'nope'; available: .*ingest"):
        pipeline_path('nope')
    with pytest.raises(PipelineError, match=r"unknown pipeline '../ingest'"):
        pipeline_path('../ingest')  # not a name: never a path outside the pipelines


@pytest.mark.parametrize('run_id', ['', '-x', 'a b', 'a/b', '../up', 'x' * 101])
def test_a_run_id_is_letters_digits_dots_underscores_and_dashes(run_id):
    with pytest.raises(PipelineError, match=r"run id .*: use letters, digits, '\.', '_' and '-' only"):
        runner._check_run_id(run_id)


def test_check_run_id_accepts_a_plain_id():
    assert runner._check_run_id('2026-12-07_nightly.1') == '2026-12-07_nightly.1'


def test_secrets_are_refused_as_parameter_names_values_or_credentials():
    with pytest.raises(PipelineError, match=r"parameter 'api_token' looks like a secret"):
        runner._refuse_secrets({'api_token': 'x'}, secrets=[])
    with pytest.raises(PipelineError, match=r"the value of parameter 'cfg' contains a secret from the environment"):
        runner._refuse_secrets({'cfg': {'sinks': ['a', ('b', 'xx-s3cret-xx')]}}, secrets=['s3cret'])
    with pytest.raises(PipelineError, match=r"the value of parameter 'k' contains a secret"):
        runner._refuse_secrets({'k': {'s3cret': 1}}, secrets=['s3cret'])  # dict keys are looked at too
    for v in ('postgresql://user:pw@db/x', 'https://hooks.slack.com/services/T/B/x', ' Bearer abc.def'):
        with pytest.raises(PipelineError, match=r"the value of parameter 'url' looks like a credential"):
            runner._refuse_secrets({'url': v}, secrets=[])
    runner._refuse_secrets({'url': 'https://example.com/x', 'n': None, 's': {1, 2}}, secrets=[])  # fine


def test_assigned_names_of_a_cell():
    src = 'a = 1\nb, c = 2, 3\nd: int = 4\na += 1\ne.f = 5\nif x:\n    g = 1\n'
    assert runner._assigned(src) == ['a', 'b', 'c', 'd']
    assert runner._assigned('def (:') == []  # not Python: no names


def test_parameters_cell_is_the_tagged_one_else_the_one_assigning_run_context(tmp_path):
    tagged = json.loads(nbformat.writes(nbformat.read(_notebook(tmp_path / 't.ipynb', 'x = 1', 'y = 2'), 4)))
    assert runner._parameters_cell(tagged) == 1
    untagged = _notebook(tmp_path / 'u.ipynb', 'import os', 'run_context = None\nstart = ""', tag=False)
    nb = json.loads(untagged.read_text())
    nb['cells'][2]['source'] = ['run_context = None\n', 'start = ""']  # the source as a list of lines
    assert runner._parameters_cell(nb) == 2
    assert runner._parameters_cell({'cells': [{'cell_type': 'markdown', 'source': 'run_context = 1'}]}) is None
    assert runner._declared(_notebook(tmp_path / 'none.ipynb', 'x = 1', tag=False)) == []


def test_tagged_copy_tags_the_parameters_cell_papermill_looks_for(tmp_path):
    untagged = _notebook(tmp_path / 'u.ipynb', 'run_context = None\nn = 3', 'print(n)', tag=False)
    (tmp_path / 'copy').mkdir()
    copy = Path(runner._tagged_copy(untagged, tmp_path / 'copy'))
    assert copy == tmp_path / 'copy' / 'u.ipynb'
    nb = json.loads(copy.read_text())
    assert nb['cells'][1]['metadata']['tags'] == ['parameters'] and 'tags' not in nb['cells'][2]['metadata']
    tagged = _notebook(tmp_path / 't.ipynb', 'n = 3')
    assert runner._tagged_copy(tagged, tmp_path / 'copy') == str(tagged)  # already tagged: used as it is


def test_an_unreadable_notebook_is_named(tmp_path):
    bad = tmp_path / 'bad.ipynb'
    bad.write_text('{not json')
    with pytest.raises(PipelineError, match=r'cannot read the notebook .*bad\.ipynb'):
        runner._declared(bad)
    with pytest.raises(PipelineError, match=r'cannot read the notebook'):
        runner._read_nb(tmp_path / 'missing.ipynb')


def test_check_parameters_names_reserved_and_unknown_parameters(tmp_path):
    nb = _notebook(tmp_path / 'p.ipynb', 'run_context = None\nn = 3\nlabel = "x"')
    assert runner._check_parameters({'n': 5}, nb) == {'n': 5}
    with pytest.raises(PipelineError, match=r"parameter 'run_context' is set by the runner, not by the caller"):
        runner._check_parameters({'run_context': {}}, nb)
    with pytest.raises(PipelineError, match=r"unknown parameter 'm', 'k' for p; valid: n, label$"):
        runner._check_parameters({'m': 1, 'k': 2}, nb)
    plain = _notebook(tmp_path / 'plain.ipynb', 'print(1)', tag=False)
    with pytest.raises(PipelineError, match=r'valid: none \(the notebook has no parameters cell\)'):
        runner._check_parameters({'m': 1}, plain)
    with pytest.raises(PipelineError, match=r'^ingest: '):
        runner._check_parameters({'backfill': 'perhaps'}, pipeline_path('ingest'))  # the pipeline's own check


def test_run_pipeline_refuses_before_running_anything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'settings.ini').write_text('[metrics]\nsla_seconds = ingest=soon\n')
    nb = _notebook(tmp_path / 'p.ipynb', 'run_context = None')
    reports = tmp_path / 'reports'
    with pytest.raises(PipelineError, match=r"no Jupyter kernel named 'no-such-kernel' \(\[runner\] kernel\)"):
        run_pipeline(str(nb), settings_path=tmp_path / 'settings.ini', reports_dir=reports, kernel='no-such-kernel')
    with pytest.raises(PipelineError, match=r'timeout must be > 0 seconds, got -1'):
        run_pipeline(str(nb), settings_path=tmp_path / 'settings.ini', reports_dir=reports, timeout=-1)
    with pytest.raises(PipelineError, match=r"\[metrics\] sla_seconds: 'ingest=soon' is not NAME=seconds"):
        run_pipeline(str(nb), settings_path=tmp_path / 'settings.ini', reports_dir=reports)
    assert not reports.exists()  # nothing ran, no run folder


# ---------------------------------------------------------------- the reports index


def _run(reports, pipeline, run_id, started, status='ok', duration=10.0, **extra):
    d = reports / pipeline / run_id
    d.mkdir(parents=True)
    rec = dict(pipeline=pipeline, run_id=run_id, status=status, started=started, duration_s=duration, **extra)
    (d / 'run.json').write_text(json.dumps(rec))
    return rec


def test_index_lists_pipelines_in_lifecycle_order_then_others_and_skips_broken_records(tmp_path):
    r = tmp_path / 'reports'
    _run(r, 'custom', 'c1', '2026-12-07T05:00:00+00:00', metrics={'score': 0.5, 'seconds_fetch': 3, 'nested': {}})
    _run(r, 'custom', 'c2', '2026-12-07T06:00:00+00:00', metrics={'score': 0.75, 'label': 'b<i>'})
    _run(r, 'health', 'h1', '2026-12-07T04:00:00+00:00', metrics={'level': 'ok', 'max_psi': 0.1, 'alerts': []})
    _run(r, 'health', 'h2', '2026-12-07T05:00:00+00:00', 'failed', 8000.0, sla_s=600, sla_missed=True, error='boom <x>')
    _run(r, 'ingest', 'i1', '2026-12-07T03:00:00+00:00', metrics={'rows_in': 1234567, 'instruments': ['A', 'B']})
    (r / 'ingest' / 'broken').mkdir()
    (r / 'ingest' / 'broken' / 'run.json').write_text('{oops')
    (r / 'ingest' / 'list').mkdir()
    (r / 'ingest' / 'list' / 'run.json').write_text('[1, 2]')
    (r / 'unnamed' / 'u1').mkdir(parents=True)
    (r / 'unnamed' / 'u1' / 'run.json').write_text(json.dumps({'status': 'ok', 'started': '2026-12-07T01:00:00+00:00'}))
    page = write_index(r).read_text()
    assert '<p class="muted">6 runs' in page  # the broken and the non-dict records are skipped
    order = [m for m in re.findall(r'<section id="([^"]+)"', page)]
    assert order == ['ingest', 'health', 'custom', 'unnamed']  # lifecycle order, then the newest activity first
    custom = page.split('<section id="custom">')[1].split('</section>')[0]
    assert '<th>score</th><th>label</th>' in custom and 'seconds_fetch' not in custom and 'nested' not in custom
    assert 'b&lt;i&gt;' in custom and '<i>' not in custom
    health = page.split('<section id="health">')[1].split('</section>')[0]
    assert 'class="num over"' in health and '2.22 h / 10 min ⚠ SLA' in health
    assert 'boom &lt;x&gt;' in health and 'SLA 10 min' in health
    ingest = page.split('<section id="ingest">')[1].split('</section>')[0]
    assert '1,234,567' in ingest and 'A, B' in ingest
    assert '<a href="unnamed/u1/report.html">' in page  # a record without a pipeline is filed under its folder


def test_an_empty_reports_folder_says_how_to_start():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        page = write_index(Path(d) / 'new').read_text()
    assert 'No runs yet: <code>autotrader run all</code>.' in page and '0 runs' in page


def test_trend_svg_draws_durations_the_sla_and_the_headline_figure():
    runs = [
        dict(run_id=f'r{i}', status=s, duration_s=d, sla_s=60, metrics={'cv_best': v})
        for i, (s, d, v) in enumerate([('ok', 50, 0.5), ('failed', 70, None), ('timeout', 30, 0.7), ('ok', 40, 0.6)])
    ]
    svg = runner._trend_svg('train', runs)
    assert svg.startswith('<svg class="trend" data-pipeline="train"') and svg.endswith('</svg>')
    assert svg.count('<rect ') == 4 and '#cf222e' in svg and '#9a6700' in svg  # coloured by status
    assert '>SLA</text>' in svg and 'line: cv_best; SLA 60 s' in svg
    assert svg.count('<circle ') == 3 and '>0.7</text>' in svg and '>0.5</text>' in svg  # the missing value is skipped
    flat = runner._trend_svg('evaluate', [dict(run_id='a', status='ok', duration_s=1, metrics={'test_sharpe': 1.0})])
    assert flat.count('<circle ') == 1 and flat.count('fill="#0969da">1</text>') == 1  # one value: one label
    assert runner._trend_svg('train', []) == ''
    none = runner._trend_svg('other', [dict(run_id='a', status='weird', duration_s=None)])
    assert 'fill="#999"' in none and '<polyline' not in none and 'line:' not in none


def test_metric_cells_are_short_and_readable():
    f = runner._fmt
    assert [f(None), f(True), f(False), f(0.123456), f(123456.7), f(1234), f([]), f([1, 2.5]), f({'a': 1})] == [
        '—',
        'yes',
        'no',
        '0.123',
        '123,457',
        '1,234',
        'none',
        '1, 2.5',
        'a=1',
    ]
    assert runner._secs(None) == '' and runner._secs(42) == '42 s' and runner._secs(210) == '3.5 min'
    assert runner._secs(7200) == '2 h'
    assert runner._started({'started': '2026-12-07T04:31:01.5+00:00'}) == '2026-12-07 04:31:01'
    assert runner._started({}) == '—'
    assert runner._clock(0) == '0:00' and runner._clock(125.9) == '2:05'
    assert runner._short('a\n  b') == 'a b' and runner._short('x' * 600) == 'x' * 499 + '…'


# ---------------------------------------------------------------- summaries and alerts


def test_run_summary_says_what_each_pipeline_did():
    assert run_summary('train', 'failed', {}, 'ValueError: x') == 'train: failed — ValueError: x'
    assert run_summary('train', 'timeout', {}) == 'train: timeout — see the report'
    assert run_summary('ingest', 'ok', {'summary': ' stored 10 bars '}) == 'ingest: stored 10 bars'
    assert run_summary('health', 'ok', {'level': 'warning', 'alerts': [{}, {}]}) == 'health: warning — 2 alerts'
    assert run_summary('health', 'ok', {'level': 'ok', 'alerts': 1}) == 'health: ok — 1 alert'
    assert run_summary('health', 'ok', {'level': 'ok'}) == 'health: ok'
    assert (
        run_summary('train', 'ok', {'version': 3, 'selected': 'lgbm', 'cv_best': 0.61234})
        == 'train: registered version 3 (lgbm), CV best 0.612'
    )
    assert run_summary('train', 'ok', {'version': 4}) == 'train: registered version 4'
    assert (
        run_summary('evaluate', 'ok', {'version': 3, 'promote': True})
        == 'evaluate: version 3 passed every gate — promoted for rollout'
    )
    assert (
        run_summary('evaluate', 'ok', {'version': 3, 'promote': False, 'gates_failed': ['sharpe', 'drawdown']})
        == 'evaluate: version 3 not promoted (gates failed: sharpe, drawdown)'
    )
    assert run_summary('evaluate', 'ok', {'version': 3}) == 'evaluate: version 3 not promoted'
    assert (
        run_summary('ingest', 'ok', {'rows_in': 1000, 'rows_clean': 990, 'instruments': ['A']})
        == 'ingest: ok — bars in 1,000, stored 990, instruments A'
    )
    assert run_summary('custom', 'ok', {'a': 1, 'b': None, 'c': 'x'}) == 'custom: ok — a 1, c x'
    assert run_summary('custom', 'ok', None) == 'custom: ok'


def test_run_alerts_critical_when_failed_warning_when_over_the_sla():
    rec = dict(
        pipeline='train', run_id='r1', status='failed', error='boom', duration_s=7300, sla_s=3600, sla_missed=True
    )
    failed, late = run_alerts(rec)
    assert (failed.level, failed.check, failed.key) == ('critical', 'pipeline_failed', 'pipeline_failed:train')
    assert failed.title == 'pipeline train: run r1 failed' and failed.text == 'boom'
    assert (late.level, late.check) == ('warning', 'pipeline_sla')
    assert late.title == 'pipeline train: run r1 missed its SLA (2.03 h > 60 min)'
    assert late.details['sla_s'] == 3600
    assert run_alerts(dict(pipeline='train', run_id='r2', status='ok')) == []


def test_alerts_that_cannot_be_sent_never_fail_the_run(tmp_path, caplog):
    ok = dict(pipeline='health', run_id='r0', status='ok')
    assert runner._alert_run(ok, None) == []  # nothing to send: the sinks are not even looked at
    st = load_settings(
        _empty_ini(tmp_path), overrides={'alerts.sinks': 'carrier_pigeon', 'data.dir': str(tmp_path / 'd')}, env={}
    )
    rec = dict(pipeline='health', run_id='r1', status='timeout', error='time-out')
    with caplog.at_level(logging.WARNING, logger='autotrader.runner'):
        rows = runner._alert_run(rec, st)
    assert rows == [
        dict(
            level='critical',
            check='pipeline_failed',
            title='pipeline health: run r1 timeout',
            status=rows[0]['status'],
        )
    ]
    assert rows[0]['status'].startswith('not sent: ') and 'carrier_pigeon' in rows[0]['status']
    assert 'run alerts not sent' in caplog.text
    st = load_settings(_empty_ini(tmp_path), overrides={'data.dir': str(tmp_path / 'd')}, env={})
    sent = runner._alert_run(rec, st)
    assert len(sent) == 1 and sent[0]['check'] == 'pipeline_failed' and 'not sent' not in str(sent[0].get('status'))


def _empty_ini(tmp_path):
    p = tmp_path / 'settings.ini'
    if not p.exists():
        p.write_text('')
    return p


def test_pipeline_metrics_that_cannot_be_written_never_fail_the_run(tmp_path, caplog):
    bad = tmp_path / 'bad.ini'
    bad.write_text('[no_such_section]\nx = 1\n')
    with caplog.at_level(logging.WARNING, logger='autotrader.runner'):
        runner._export_metrics(dict(pipeline='ingest', run_id='r', status='ok'), bad)  # no exception
    assert 'pipeline metrics not written' in caplog.text and 'no_such_section' in caplog.text


# ---------------------------------------------------------------- reports offline, the terminal status line


def test_reports_load_no_remote_script_and_fit_their_page():
    page = (
        '<html><head><!-- Load mathjax -->\n<script src="https://cdn.example/mathjax.js"></script>\n'
        '<script type="text/x-mathjax-config">MathJax.Hub.Config({});</script>\n'
        '<script type="module">import m from "https://cdnjs.cloudflare.com/ajax/libs/mermaid/x.js";</script>\n'
        '<script src=//cdn.example/require.js></script><script>var local = 1;</script></head><body></body></html>'
    )
    out = runner._offline(page)
    assert 'cdn.example' not in out and 'mathjax' not in out.lower() and 'mermaid' not in out
    assert '<script>var local = 1;</script>' in out
    assert out.count('/* autotrader: a report fits its page */') == 1 and out.index('<style>') < out.index('</head>')


def test_a_report_that_cannot_render_is_still_a_page():
    page = runner._render(object())
    assert page.startswith('<!DOCTYPE html>') and 'Report could not be rendered' in page


def test_the_status_line_shows_cell_progress_line_and_probe(tmp_path):
    t = runner._Ticker('train', tmp_path, probe=lambda: 'trial 3/30', stream=io.StringIO(), every=0.01)
    assert re.fullmatch(r'train 0:00 · trial 3/30', t.line())
    t.cells, t.cell = 12, 4
    f = tmp_path / '.progress'
    f.write_bytes(b'fetch sim: 1/5\nfetch sim: 2/5\nfetch si')  # the last line is not finished yet
    assert t.line() == 'train 0:00 · cell 4/12 · fetch sim: 2/5 · trial 3/30'
    with open(f, 'ab') as fh:
        fh.write(b'm: 3/5\n')
    assert t.line() == 'train 0:00 · cell 4/12 · fetch sim: 3/5 · trial 3/30'
    f.unlink()
    assert 'fetch sim: 3/5' in t.line()  # the file is gone: the last line stays


def test_a_failing_probe_does_not_disturb_the_status_line_and_the_line_is_cleared_at_the_end(tmp_path):
    def probe():
        raise RuntimeError('database locked')

    out = io.StringIO()
    with runner._Ticker('health', tmp_path, probe=probe, stream=out, every=0.01):
        deadline = time.monotonic() + 3
        while out.getvalue().count('\r') < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    text = out.getvalue()
    assert text.startswith('\rhealth 0:00\x1b[K') and text.endswith('\r\x1b[K')
    assert 'database locked' not in text


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_shows_on_a_terminal_only_and_not_under_ci(monkeypatch):
    monkeypatch.setattr(sys, 'stderr', _Tty())
    monkeypatch.delenv('CI', raising=False)
    assert runner._terminal(True) and not runner._terminal(False)
    monkeypatch.setenv('CI', 'true')
    assert not runner._terminal(True)
    monkeypatch.setenv('CI', '0')
    assert runner._terminal(True)
    monkeypatch.setattr(sys, 'stderr', io.StringIO())
    monkeypatch.delenv('CI')
    assert not runner._terminal(True)


def test_train_probe_reads_trials_of_the_running_study_from_optunas_storage(tmp_path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = tmp_path / 'optuna.db'
    st = load_settings(_empty_ini(tmp_path), overrides={'data.dir': str(tmp_path)}, env={})
    url = f'sqlite:///{db}'
    optuna.create_study(study_name='old', storage=url, direction='maximize').optimize(lambda t: 9.0, n_trials=2)
    probe = runner._train_probe(st, {'n_trials': 5})
    assert probe() is None  # no trial of this run yet: the old study's trials do not count
    study = optuna.create_study(study_name='now', storage=url, direction='maximize')
    study.optimize(lambda t: t.suggest_float('x', 0, 1) * 0 + 0.25, n_trials=1)
    study.optimize(lambda t: 0.5, n_trials=1)
    assert probe() == f'trial 2/5, best {st.train.objective} 0.5'
    other = load_settings(_empty_ini(tmp_path), overrides={'train.optuna_storage': 'postgresql://h/optuna'}, env={})
    assert runner._train_probe(other, {}) is None  # only SQLite is read
    missing = load_settings(_empty_ini(tmp_path), overrides={'data.dir': str(tmp_path / 'none')}, env={})
    assert runner._train_probe(missing, {})() is None  # no storage yet: no line, no error


# ---------------------------------------------------------------- Airflow DAGs


def _settings(tmp_path, **airflow):
    return load_settings(_empty_ini(tmp_path), overrides={f'airflow.{k}': v for k, v in airflow.items()}, env={})


def test_dag_source_runs_the_pipeline_through_the_runner_on_the_worker(tmp_path):
    spec = PipelineSpec(
        'train',
        'train',
        '30 2 * * 1',
        sla_s=7200,
        retries=2,
        retry_delay=120,
        timeout=1800,
        parameters={'n_trials': 5},
        triggers=['evaluate', 'rollout'],
        trigger_when='registered',
    )
    src = dag_source(spec, _settings(tmp_path), reports_dir='/srv/reports', available=['evaluate'], window={})
    compile(src, 'autotrader_train.py', 'exec')  # valid Python (not imported: no Airflow here)
    assert "dag_id='autotrader_train'" in src
    assert "CronDataIntervalTimetable('30 2 * * 1', timezone='UTC')" in src
    assert 'SLA: 2 h, enforced by the' in src and 'Retries: 2, from 120 s' in src
    assert 'execution_timeout=timedelta(seconds=2100)' in src  # the run's time-out + 5 min
    bash = re.search(r'BASH_COMMAND = (.+)', src).group(1)
    cmd = eval(bash)  # a string literal
    assert cmd.startswith(PRELUDE) and cmd.endswith(
        "exec autotrader run train --no-progress -p n_trials=5 --reports /srv/reports --timeout 1800"
    )
    assert "ShortCircuitOperator(task_id='registered', python_callable=metric_is_true" in src
    assert "gate >> TriggerDagRunOperator(task_id='trigger_evaluate', trigger_dag_id='autotrader_evaluate')" in src
    assert 'autotrader_rollout' not in src  # not available: not triggered
    assert 'Then triggers autotrader_evaluate when registered is true.' in src
    assert 'def metric_is_true(line, metric):' in src  # the gate travels with the DAG file


def test_dag_source_of_a_triggered_pipeline_without_gate_or_schedule(tmp_path):
    spec = PipelineSpec('evaluate', 'evaluate', '', triggers=['rollout'])
    src = dag_source(spec, _settings(tmp_path, command='/opt/kit/bin/autotrader'), window={})
    assert 'schedule=None,' in src and 'Schedule (UTC): none (triggered)' in src and 'SLA: none' in src
    assert "    run >> TriggerDagRunOperator(task_id='trigger_rollout'" in src
    assert 'ShortCircuitOperator(task_id=' not in src and 'Then triggers autotrader_rollout.' in src
    assert 'execution_timeout=timedelta(seconds=3900)' in src  # no time-out: an hour, + 5 min
    assert 'exec /opt/kit/bin/autotrader run evaluate --no-progress' in src
    with pytest.raises(ValueError, match=r"\[pipeline_health\] schedule '\*/30 \* \* \* \* \*' has seconds"):
        dag_source(PipelineSpec('health', 'health', '*/30 * * * * *'), _settings(tmp_path))


def test_ecs_dags_name_every_missing_key_and_start_the_kits_image(tmp_path):
    with pytest.raises(ValueError, match=r'run_with = ecs needs ecs_cluster, ecs_task_definition, ecs_subnets, '):
        _ecs(_settings(tmp_path, run_with='ecs'))
    st = _settings(
        tmp_path,
        run_with='ecs',
        ecs_cluster='c',
        ecs_task_definition='td',
        ecs_subnets='s1, s2',
        ecs_security_groups='sg',
        ecs_log_group='/lg',
    )
    assert _ecs(st) == dict(
        cluster='c',
        task_definition='td',
        container='runner',
        subnets=['s1', 's2'],
        security_groups=['sg'],
        log_group='/lg',
        log_stream_prefix='runner',
        aws_conn_id='aws_default',
        region=None,
    )
    src = dag_source(PipelineSpec('ingest', 'ingest', '0 * * * *'), st, window={'end': '{{ x }}'})
    assert "COMMAND = ['python', '-m', 'autotrader.ops.airflow_dags', 'run', 'ingest', '--no-progress', '-p'" in src
    assert "'end={{ x }}'" in src and 'on cluster c.' in src and 'BashOperator' not in src


def test_the_data_interval_goes_to_the_parameters_a_notebook_declares(tmp_path):
    specs = pipeline_specs(load_settings(_empty_ini(tmp_path), env={}))
    ingest = _window(specs['ingest'])
    assert set(ingest) <= {'start', 'end', 'backfill'} and 'end' in ingest
    assert 'data_interval_end' in ingest['end']
    assert _window(PipelineSpec('rollout', 'rollout')) == {}  # no data interval for a rollout
    fixed = PipelineSpec('ingest', 'ingest', parameters={'end': '2026-01-01'})
    assert 'end' not in _window(fixed)  # its own parameter wins
    assert _window(PipelineSpec('train', str(tmp_path / 'missing.ipynb'))) == {}  # unreadable: no window
    assert _run_args(PipelineSpec('x', 'x'), None, None) == ['run', 'x', '--no-progress']


def test_metric_is_true_reads_the_metrics_line_or_the_run_record(tmp_path):
    assert metric_is_true('metrics: {"promote": true, "n": 0}', 'promote')
    assert not metric_is_true('metrics: {"promote": true, "n": 0}', 'n')
    assert not metric_is_true('  metrics: {}\n', 'promote')
    rec = tmp_path / 'run.json'
    rec.write_text(json.dumps({'metrics': {'registered': 1}}))
    assert metric_is_true(f'record:  {rec}', 'registered')
    assert not metric_is_true(f'record:  {rec}', 'promote')


def test_run_task_passes_the_output_through_and_ends_with_the_runs_metrics(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for k in [k for k in __import__('os').environ if k.startswith('AUTOTRADER')]:
        monkeypatch.delenv(k)
    (tmp_path / 'settings.ini').write_text('')
    rc = run_task(['run', 'no_such_pipeline'])
    out = capsys.readouterr().out.splitlines()
    assert rc != 0 and any("unknown pipeline 'no_such_pipeline'" in x for x in out)
    assert out[-1] == 'metrics: {}'
    _notebook(
        tmp_path / 'tiny.ipynb',
        'run_context = None',
        'from autotrader.pipelines.context import RunContext\n'
        "RunContext.from_param(run_context).record(promote=True, n=3, gates=['a'], note=None)",
    )
    rc = run_task(['run', 'tiny.ipynb', '--no-progress', '--reports', 'reports'])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and any(x.startswith('record:') for x in out)
    assert out[-1] == 'metrics: {"promote":true,"n":3,"note":null}'  # scalars only: the list is left out
    assert metric_is_true(out[-1], 'promote')
