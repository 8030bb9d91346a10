"""The signal freshness SLO, end to end: a real gateway (the Starlette app on uvicorn, in this process, on 127.0.0.1)
on a manual clock, serving the session champion over a copy of its real feature store (hourly sim bars of four
crypto instruments). Served at a bar's close + 5 s it is fresh; with the clock past the next close and no new data it
is one bar behind, then past the SLO (warning), then more than two bars past it (critical) — as `/metrics` says;
the next bar ingested into the store, the gateway picks it up and the instrument is back to 0 bars behind. An
instrument routed but without any feature row has no freshness series and breaks nothing."""

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request

import pandas as pd
import pytest

from local_servers import free_port

SLO = 600.0  # [deploy] freshness_slo_seconds: 10 minutes after a bar's close


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(url: str) -> dict:
    "{(metric, instrument): value} of the gateway's signal freshness series on /metrics."
    code, text = get(url + '/metrics')
    assert code == 200, text
    out = {}
    for name, inst, v in re.findall(r'^(autotrader_signal_[a-z_]+)\{instrument="([^"]+)"\} (\S+)$', text, re.M):
        out[name, inst] = float(v)
    return out


def fresh(m: dict, inst: str) -> dict:
    "The freshness series of one instrument, by short name."
    p = 'autotrader_signal_'
    return {
        k: m.get((p + n, inst))
        for k, n in dict(
            age='bar_age_seconds',
            behind='bars_behind',
            stale='stale_seconds',
            slo='freshness_slo_seconds',
            level='freshness_level',
        ).items()
    }


@pytest.fixture
def served(champion, tmp_path, monkeypatch):
    """(gateway core, its URL, the manual clock, settings): the champion copied, its routing bootstrapped, the app
    served by uvicorn in a thread, the clock at the newest stored bar's close + 5 s."""
    import uvicorn
    from champion import copy_champion
    from autotrader.clock import ManualClock
    from autotrader.config import load_settings
    from autotrader.deploy.gateway import create_app

    for k in [k for k in os.environ if k.startswith('AUTOTRADER')]:
        monkeypatch.delenv(k)
    c = copy_champion(champion, tmp_path / 'champion')
    p = c.dir / 'settings-freshness.ini'
    p.write_text(
        c.settings_path.read_text()
        + '[deploy]\n'
        + f"state_url = sqlite:///{c.dir / 'freshness.db'}\n"
        + 'feature_poll_seconds = 0.2\nrouting_poll_seconds = 0.2\nheartbeat_seconds = 0.5\nwarmup_requests = 3\n'
        + f'freshness_slo_seconds = {SLO}\n'
    )
    st = load_settings(p, env={})
    port = free_port()
    app = create_app(st, url=f'http://127.0.0.1:{port}', replica='freshness-1')
    gw = app.state.gateway
    clock = ManualClock(pd.Timestamp('2024-12-01', tz='UTC').timestamp())  # moved to the newest close below
    gw.clock = clock
    gw.state.clock_override = clock
    server = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=port, log_level='warning', lifespan='on'))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 120
    while not (server.started and gw.ready()[0]):
        assert time.monotonic() < deadline and th.is_alive(), f'the gateway did not start: {gw.ready()}'
        time.sleep(0.05)
    h = next(iter(gw.snap.models.values()))
    cache = gw.cache(h.dataset)
    close = max(cache.data[i][0][-1] for i in c.instruments) / 1e9  # the newest close held for any instrument
    clock.set(close + 5)
    yield gw, f'http://127.0.0.1:{port}', clock, st, c
    server.should_exit = True
    th.join(timeout=30)


def test_signal_freshness_follows_the_clock_and_the_store(served):
    from autotrader.pipelines.ingest import ingest

    t_start = time.perf_counter()
    gw, url, clock, st, c = served
    insts = list(c.instruments)
    t0 = clock.now()  # the newest close + 5 s

    # 1. at the close + 5 s: every instrument serves its last closed bar
    m = scrape(url)
    for i in insts:
        f = fresh(m, i)
        assert f == dict(age=5.0, behind=0.0, stale=0.0, slo=SLO, level=0.0), (i, f)
    code, body = get(f'{url}/v1/signal/BTC-USD')
    j = json.loads(body)
    assert code == 200 and j['bar_age_seconds'] == 5.0, body
    served_bar = pd.Timestamp(j['as_of'])
    assert served_bar == pd.Timestamp(t0 - 5 - 3600, unit='s', tz='UTC')  # bars are labelled by their open time

    # 2. the clock past the next close, no new data: one bar behind, stale 5 s (within the SLO)
    clock.set(t0 + 3600)
    m = scrape(url)
    for i in insts:
        assert fresh(m, i) == dict(age=3605.0, behind=1.0, stale=5.0, slo=SLO, level=0.0), (i, fresh(m, i))
    assert json.loads(get(f'{url}/v1/signal/BTC-USD')[1])['bar_age_seconds'] == 3605.0

    # 3. still nothing 15 minutes after that close: the SLO (10 min) is breached — warning
    clock.set(t0 + 3600 + 900)
    m = scrape(url)
    assert fresh(m, 'ETH-USD') == dict(age=4505.0, behind=1.0, stale=905.0, slo=SLO, level=1.0)

    # 4. the next bar of BTC-USD written to the store by a real ingest: the gateway picks it up, back to 0 behind
    t = time.perf_counter()
    ingest(settings=st, instruments=['BTC-USD'], end=pd.Timestamp(t0 - 5 + 3600, unit='s', tz='UTC'), progress=False)
    ingest_s = time.perf_counter() - t
    deadline = time.monotonic() + 30
    while fresh(scrape(url), 'BTC-USD')['behind'] != 0.0:
        assert time.monotonic() < deadline, f'the gateway did not pick up the new bar: {fresh(scrape(url), "BTC-USD")}'
        time.sleep(0.1)
    m = scrape(url)
    assert fresh(m, 'BTC-USD') == dict(age=905.0, behind=0.0, stale=0.0, slo=SLO, level=0.0), fresh(m, 'BTC-USD')
    assert fresh(m, 'ETH-USD')['behind'] == 1.0 and fresh(m, 'ETH-USD')['level'] == 1.0  # not ingested: still late
    j = json.loads(get(f'{url}/v1/signal/BTC-USD')[1])
    assert pd.Timestamp(j['as_of']) == served_bar + pd.Timedelta(hours=1) and j['bar_age_seconds'] == 905.0

    # 5. three more hours without data: ETH-USD 4 bars behind, stale > SLO + 2 bars — critical; BTC-USD 3 behind
    clock.set(t0 + 4 * 3600 + 900)
    m = scrape(url)
    assert fresh(m, 'ETH-USD') == dict(age=4 * 3600 + 905.0, behind=4.0, stale=3 * 3600 + 905.0, slo=SLO, level=2.0)
    assert fresh(m, 'BTC-USD')['behind'] == 3.0 and fresh(m, 'BTC-USD')['level'] == 2.0
    print(f'freshness: ingest of one bar {ingest_s:.1f} s, whole test {time.perf_counter() - t_start:.1f} s')


def test_an_instrument_without_data_has_no_freshness_series(served):
    "Routed explicitly but never ingested: no series (never NaN on /metrics), a 404 for its signal, the others unharmed."
    gw, url, clock, st, c = served
    gw.state.apply_routing({}, {'NEW-USD': {'slot': 'blue'}}, action='test', actor='test', reason='a new instrument')
    assert gw.reload()
    df = gw.freshness()
    assert 'NEW-USD' in df.index and df.loc['NEW-USD'].drop(['version', 'timeframe', 'calendar']).isna().all()
    code, text = get(url + '/metrics')
    assert code == 200 and 'NEW-USD"' not in ''.join(l for l in text.splitlines() if l.startswith('autotrader_signal_'))
    assert not re.search(r'^autotrader_signal_\S+ (NaN|[+-]?Inf)$', text, re.M)
    assert fresh(scrape(url), 'BTC-USD')['level'] == 0.0
    assert get(f'{url}/v1/signal/NEW-USD')[0] == 404


def test_the_default_slo_is_one_bar_plus_the_ingest_delay(tmp_path):
    "[deploy] freshness_slo_seconds = 0: one bar + the longest gap of the ingest schedule + its SLA; set: as set."
    from autotrader.config import load_settings
    from autotrader.deploy.gateway import freshness_slo

    p = tmp_path / 'settings.ini'
    p.write_text('')
    cases = [
        ({}, 3600 + 86400 + 7200.0),  # the shipped daily 02:00 ingest, SLA 2 h, hourly bars: 27 h
        ({'pipeline_ingest.schedule': '5 * * * *', 'metrics.sla_seconds': 'ingest=600'}, 3600 + 3600 + 600.0),
        ({'data.timeframe': '1d'}, 86400 + 86400 + 7200.0),
        ({'data.timeframe': '1m', 'pipeline_ingest.schedule': '* * * * *', 'metrics.sla_seconds': 'ingest=30'}, 150.0),
        ({'pipeline_ingest.schedule': ''}, 3600 + 7200.0),  # triggered only: no schedule gap is known
        ({'deploy.freshness_slo_seconds': '90'}, 90.0),
    ]
    for overrides, want in cases:
        assert freshness_slo(load_settings(p, overrides=overrides, env={})) == want, overrides
