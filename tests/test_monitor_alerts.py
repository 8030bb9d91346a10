"""Alerts end to end: a planted shift in sim data raises a critical alert that reaches Slack- and PagerDuty-format
webhook receivers and an SMTP server on 127.0.0.1; unshifted data raises none (false-alarm rate over 50 seeded runs);
a webhook that is down keeps the alert, which a later run delivers."""

import json
import logging
import pandas as pd
import pytest
from autotrader.config import load_settings
from autotrader.monitor.alerts import AlertManager, Alert, read_outbox
from autotrader.pipelines.health import run_health
from monitor_helpers import sim_store, Receiver, free_port

SLACK_PATH = '/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX'
ROUTING_KEY = 'R0ut1ngKeyForTests0123456789abcd'
NOW = '2024-03-11'  # 70 days of data; the current window is the last 168 bars (a week)
SHIFT = '2024-03-08'


@pytest.fixture
def smtp():
    "A real SMTP server (aiosmtpd) on 127.0.0.1; yields (port, received messages)."
    from aiosmtpd.controller import Controller

    got = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            got.append(
                dict(
                    mail_from=envelope.mail_from,
                    rcpt=list(envelope.rcpt_tos),
                    data=envelope.content.decode('utf-8', 'replace'),
                )
            )
            return '250 OK'

    port = free_port()
    c = Controller(Handler(), hostname='127.0.0.1', port=port)
    c.start()
    try:
        yield port, got
    finally:
        c.stop()


def settings(tmp_path, **over):
    base = {
        'data.dir': str(tmp_path / 'data'),
        'instruments.symbols': 'BTC-USD, ETH-USD',
        'features.set': 'basic',
    }  # sim_store writes basic features
    return load_settings(overrides={**base, **over}, env={})


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no ./settings.ini
    monkeypatch.setenv('NO_PROXY', '127.0.0.1')
    monkeypatch.setenv('no_proxy', '127.0.0.1')
    for k in ('AUTOTRADER_SLACK_WEBHOOK_URL', 'AUTOTRADER_PAGERDUTY_ROUTING_KEY', 'AUTOTRADER_SMTP_PASSWORD'):
        monkeypatch.delenv(k, raising=False)
    logging.getLogger('autotrader.alerts').setLevel(logging.ERROR)


def test_planted_shift_reaches_slack_pagerduty_and_email(tmp_path, monkeypatch, smtp):
    smtp_port, mails = smtp
    with Receiver(200, b'ok') as slack, Receiver(202, b'{"status":"success","message":"Event processed"}') as pd_:
        monkeypatch.setenv('AUTOTRADER_SLACK_WEBHOOK_URL', slack.url(SLACK_PATH))
        monkeypatch.setenv('AUTOTRADER_PAGERDUTY_ROUTING_KEY', ROUTING_KEY)
        st = settings(
            tmp_path,
            **{
                'alerts.sinks': 'log, file, slack, pagerduty, email',
                'alerts.pagerduty_url': pd_.url('/v2/enqueue'),
                'alerts.smtp_host': '127.0.0.1',
                'alerts.smtp_port': str(smtp_port),
                'alerts.smtp_to': 'quant@example.com, ops@example.com',
                'alerts.source': 'test-host',
            },
        )
        sim_store(st.store.dir, shift_from=SHIFT)
        r = run_health(st, now=NOW)
        assert r.levels['drift'] == 'critical'
        crit = [a for a in r.alerts if a.level == 'critical' and a.check == 'drift']
        assert len(crit) == 1 and 'ret_1' in crit[0].text
        # Slack: incoming-webhook format
        assert slack.requests and all(q['path'] == SLACK_PATH for q in slack.requests)
        s = next(q['json'] for q in slack.requests if 'Feature drift' in q['json']['text'])
        assert s['text'].startswith(':red_circle: CRITICAL: Feature drift')
        assert [b['type'] for b in s['blocks']] == ['header', 'section', 'context']
        assert s['blocks'][0]['text']['type'] == 'plain_text' and s['blocks'][1]['text']['type'] == 'mrkdwn'
        assert 'ret_1' in s['blocks'][1]['text']['text']
        # PagerDuty: Events API v2
        assert all(
            q['path'] == '/v2/enqueue' and q['headers']['Content-Type'] == 'application/json' for q in pd_.requests
        )
        e = next(q['json'] for q in pd_.requests if q['json']['payload']['component'] == 'drift')
        assert e['routing_key'] == ROUTING_KEY and e['event_action'] == 'trigger'
        assert e['dedup_key'] == f'autotrader:drift:{r.feature_set}'
        p = e['payload']
        assert (
            p['severity'] == 'critical'
            and p['source'] == 'test-host'
            and p['summary'].startswith('[CRITICAL] Feature drift')
        )
        assert set(p) >= {'summary', 'severity', 'source', 'component', 'custom_details'}
        assert p['custom_details']['features']['ret_1']['level'] == 'critical'
        # e-mail
        drift_mail = [m for m in mails if 'Feature drift' in m['data']]
        assert drift_mail and drift_mail[0]['rcpt'] == ['quant@example.com', 'ops@example.com']
        assert 'Subject: [AutoTrader CRITICAL] Feature drift' in drift_mail[0]['data']
        # every delivery succeeded, and no secret reached the outbox
        assert r.dispatched.loc[
            r.dispatched.check == 'drift', ['file', 'log', 'slack', 'pagerduty', 'email']
        ].values.tolist() == [['sent'] * 5]
        text = (tmp_path / 'data' / 'alerts' / 'alerts.jsonl').read_text()
        assert ROUTING_KEY not in text and SLACK_PATH not in text


def test_no_alert_on_unshifted_data_false_alarm_rate(tmp_path):
    runs, alarms, checks = 50, 0, {}
    for seed in range(runs):
        d = tmp_path / f's{seed}'
        st = settings(d)
        sim_store(st.store.dir, seed=seed)
        r = run_health(st, now=NOW, write_metrics=False)
        bad = [a for a in r.alerts if a.level in ('warning', 'critical')]
        alarms += bool(bad)
        for a in bad:
            checks[f'{a.check}/{a.level}'] = checks.get(f'{a.check}/{a.level}', 0) + 1
    print(
        f"\nfalse-alarm rate on unshifted sim data: {alarms}/{runs} runs = {alarms / runs:.1%} with a warning or critical alert {checks or ''}"
    )
    assert alarms <= 0.05 * runs, checks  # the target: at most 5 % of checks alert on unshifted data
    # the same runs with a planted shift: always critical
    hits = 0
    for seed in range(10):
        st = settings(tmp_path / f'p{seed}')
        sim_store(st.store.dir, seed=seed, shift_from=SHIFT)
        hits += run_health(st, now=NOW, write_metrics=False, send=False).levels['drift'] == 'critical'
    print(f"detection rate of a 3x volatility shift over the last 3 days: {hits}/10")
    assert hits == 10


def test_webhook_down_keeps_the_alert_and_a_later_run_delivers_it(tmp_path, monkeypatch):
    port = free_port()  # nothing listens there yet
    monkeypatch.setenv('AUTOTRADER_SLACK_WEBHOOK_URL', f'http://127.0.0.1:{port}{SLACK_PATH}')
    st = settings(tmp_path, **{'alerts.sinks': 'log, file, slack', 'alerts.timeout': '3'})
    sim_store(st.store.dir, shift_from=SHIFT)
    r1 = run_health(st, now=NOW)
    row = r1.dispatched.set_index('check').loc['drift']
    assert row.file == 'sent' and row.slack.startswith('failed')
    outbox = read_outbox(tmp_path / 'data' / 'alerts' / 'alerts.jsonl')
    kept = next(a for a in outbox if a['check'] == 'drift')
    assert kept['deliveries']['slack']['status'] == 'failed' and kept['deliveries']['slack']['attempts'] == 1
    assert len(r1.undelivered) >= 1
    # one hour later the webhook is up: the new drift alert is suppressed by the cool-down, the kept one is delivered
    import http.server
    import threading

    got = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers['Content-Length']))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(('127.0.0.1', port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        r2 = run_health(st, now=pd.Timestamp(NOW, tz='UTC') + pd.Timedelta(hours=1))
    finally:
        srv.shutdown()
        srv.server_close()
    d = r2.dispatched
    assert d[(d.check == 'drift') & (d.run == 'new')].status.tolist() == ['suppressed']
    retried = d[(d.check == 'drift') & (d.run == 'retry')]
    assert retried.id.tolist() == [kept['id']] and retried.slack.tolist() == ['sent']
    assert any(kept['id'] in json.dumps(g) for g in got)
    assert len(r2.undelivered) == 0
    a = next(x for x in read_outbox(tmp_path / 'data' / 'alerts' / 'alerts.jsonl') if x['id'] == kept['id'])
    assert a['deliveries']['slack']['status'] == 'sent' and a['deliveries']['slack']['attempts'] == 2


def test_routing_by_level_and_expiry(tmp_path):
    class Sink:
        def __init__(self, name, fail=False):
            self.name, self.fail, self.got = name, fail, []

        def send(self, a):
            if self.fail:
                raise RuntimeError('down')
            self.got.append(a['level'])

    s, p = Sink('slack'), Sink('pagerduty', fail=True)
    m = AlertManager(
        tmp_path / 'a.jsonl',
        {'slack': s, 'pagerduty': p},
        {'critical': ['slack', 'pagerduty'], 'warning': ['slack'], 'info': []},
        cooldown_minutes=60,
        retry_hours=2,
    )
    t0 = pd.Timestamp('2024-01-01', tz='UTC').to_pydatetime()
    out = m.dispatch([Alert('info', 'a', 'i'), Alert('warning', 'b', 'w'), Alert('critical', 'c', 'c')], now=t0)
    assert s.got == ['warning', 'critical']
    assert out.pagerduty.tolist()[2].startswith('failed') and out.pagerduty.tolist()[:2] == ['', '']
    m.dispatch([], now=t0 + pd.Timedelta(hours=1))  # retried, still failing
    m.dispatch([], now=t0 + pd.Timedelta(hours=3))  # older than retry_hours: expired, still in the file
    rec = {r['check']: r for r in read_outbox(tmp_path / 'a.jsonl')}
    assert (
        rec['c']['deliveries']['pagerduty']['status'] == 'expired'
        and rec['c']['deliveries']['pagerduty']['attempts'] == 2
    )
    assert len(m.undelivered()) == 0
