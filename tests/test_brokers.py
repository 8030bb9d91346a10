"""Broker connectors with their real client libraries.

Binance (ccxt) and Oanda (oandapyV20) talk HTTP to local servers on 127.0.0.1 that answer in each broker's
documented wire format (tests/broker_servers.py), with scripted faults: multi-page ranges, 429 + Retry-After, 418,
5xx, malformed JSON, empty and truncated pages. Interactive Brokers is tested at the boundary of ib_async's `IB`
object (no TWS can run here), and its chunking and pacer on their own. One end-to-end run of
`autotrader run ingest` against the local Binance server, configured by settings.ini alone.
"""

import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings as hsettings, strategies as hs

from autotrader.config import SettingsError, load_settings
from autotrader.data.archive import LocalArchive
from autotrader.data.brokers import IB_CHUNK_DAYS, IBKRConnector, IBPacer, ib_chunks
from autotrader.data.connectors import ConnectorError, get_connector, sim_bars
from autotrader.features.store import FeatureStore
from autotrader.pipelines.ingest import ingest
from autotrader.schema import Instrument

from broker_servers import BinanceServer, OandaServer
from inprocess import autotrader_cli

ROOT = Path(__file__).resolve().parents[1]
UTC = lambda s: pd.Timestamp(s, tz='UTC') if pd.Timestamp(s).tzinfo is None else pd.Timestamp(s).tz_convert('UTC')
MS = lambda s: int(UTC(s).value // 1_000_000)
FAST = {'retries': '5', 'backoff_base': '0.01', 'backoff_max': '0.02'}


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch, tmp_path):
    "cwd is tmp_path, no AUTOTRADER* variable from outside, no proxy for 127.0.0.1."
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith('AUTOTRADER')]:
        monkeypatch.delenv(k)
    monkeypatch.setenv('NO_PROXY', '127.0.0.1,localhost')
    monkeypatch.setenv('no_proxy', '127.0.0.1,localhost')


def make_settings(tmp_path, source, symbols, **over):
    o = {'data.dir': str(tmp_path / 'data'), 'data.source': source, 'instruments.symbols': symbols}
    for k, v in over.items():
        o[k.replace('__', '.')] = str(v)
    return load_settings(overrides=o, env={})


def fast(section, **more):
    return {f'{section}.{k}': v for k, v in {**FAST, **more}.items()}


def stored(st, symbol=None):
    "Stored bars (of one instrument). Filtered here: FeatureStore.read(instruments=…) misses names with '/' (its partition keys are sanitised)."
    s = FeatureStore(st.store.dir)
    df = s.read('bars') if 'bars' in s.datasets() else pd.DataFrame(columns=['instrument', 'timestamp'])
    return df[df.instrument == symbol].reset_index(drop=True) if symbol else df


def state(st):
    "Everything ingest may write: store files (catalog included) and archive objects."
    files = lambda d: (
        sorted((p.relative_to(d).as_posix(), p.stat().st_size) for p in Path(d).rglob('*') if p.is_file())
        if Path(d).exists()
        else []
    )
    return files(st.store.dir), files(st.archive.dir)


def assert_bars_equal(got, want, decimals=8):
    got = got.sort_values('timestamp').reset_index(drop=True)
    want = want.sort_values('timestamp').reset_index(drop=True)
    assert list(got.timestamp) == list(want.timestamp)
    for c in ('open', 'high', 'low', 'close'):
        np.testing.assert_allclose(got[c].to_numpy(), want[c].round(decimals).to_numpy(), rtol=0, atol=10**-decimals)


# ================================================================== Binance (ccxt)


@pytest.fixture
def binance():
    with BinanceServer() as s:
        yield s


def bsettings(tmp_path, server, symbols='BTC/USDT:crypto', **over):
    return make_settings(
        tmp_path,
        'binance',
        symbols,
        **{'binance.api_url': server.url, 'binance.page_limit': 100, **fast('binance', ban_wait='0.05'), **over},
    )


def test_binance_multi_page_range_exact_bytes_archived(tmp_path, binance):
    st = bsettings(tmp_path, binance)
    res = ingest(start='2024-01-01', end='2024-01-10', timeframe='1h', settings=st, progress=False)
    want = binance.klines('BTCUSDT', '1h', '2024-01-01', '2024-01-10')
    got = stored(st, 'BTC/USDT')
    assert len(got) == 216 and set(got.source) == {'binance'} and str(got.timestamp.dtype) == 'datetime64[ns, UTC]'
    assert_bars_equal(got, want)
    assert res.validation.completeness.completeness.tolist() == [1.0]
    # one exchangeInfo, then pages of 100 by startTime, each bounded by endTime = end - 1 ms
    paths = [r['path'] for r in binance.requests]
    assert paths == ['/api/v3/exchangeInfo'] + ['/api/v3/klines'] * 3
    q = [r['query'] for r in binance.data_requests()]
    assert [int(x['startTime']) for x in q] == [MS('2024-01-01'), MS('2024-01-05 04:00'), MS('2024-01-09 08:00')]
    assert {(x['symbol'], x['interval'], x['limit'], x['endTime']) for x in q} == {
        ('BTCUSDT', '1h', '100', str(MS('2024-01-10') - 1))
    }
    # one archive object per page, holding the response body byte for byte, dated by the page's first bar
    arc = LocalArchive(st.archive.dir)
    keys = arc.list('binance')
    assert sorted(arc.get(k) for k in keys) == sorted(r['body'] for r in binance.data_requests())
    assert [k.split('/')[1:3] for k in keys] == [
        ['BTC_USDT', '2024-01-01'],
        ['BTC_USDT', '2024-01-05'],
        ['BTC_USDT', '2024-01-09'],
    ]
    # re-parsing the archive gives the stored bars (the archive is the source of truth)
    con = get_connector('binance', st)
    from autotrader.data.archive import RawPayload

    again = con.parse([RawPayload('binance', 'BTC/USDT', dt.date(2024, 1, 1), arc.get(k), 'json') for k in keys], '1h')
    assert_bars_equal(again, want)


@pytest.mark.parametrize(
    'symbol,symbol_map', [('BTC/USDT', ''), ('BTCUSDT', ''), ('btc-usdt', ''), ('BTC-USD', 'BTC-USD=BTC/USDT')]
)
def test_binance_symbol_mapping(tmp_path, binance, symbol, symbol_map):
    con = get_connector('binance', bsettings(tmp_path, binance, binance__symbol_map=symbol_map))
    raw = con.fetch_raw([Instrument(symbol)], '1h', UTC('2024-02-01'), UTC('2024-02-01 05:00'))
    assert binance.data_requests()[0]['query']['symbol'] == 'BTCUSDT'
    bars = con.parse(raw, '1h')
    assert len(bars) == 5 and set(bars.instrument) == {symbol}  # stored under the configured name


def test_binance_unknown_symbol_is_a_clear_error(tmp_path, binance):
    con = get_connector('binance', bsettings(tmp_path, binance))
    with pytest.raises(
        ConnectorError,
        match=r"no spot market 'BTC/USD' for instrument 'BTC-USD'; markets for BTC: BTC/USDT.*symbol_map",
    ):
        con.fetch_raw([Instrument('BTC-USD')], '1h', UTC('2024-02-01'), UTC('2024-02-02'))
    assert binance.data_requests() == []


def test_binance_transient_faults_are_retried(tmp_path, binance):
    "5xx, malformed JSON and a truncated body on page 2, 429 with Retry-After on page 3: retried, the bars are right."
    page2 = lambda r: r['query'].get('startTime') == str(MS('2024-01-05 04:00'))
    page3 = lambda r: r['query'].get('startTime') == str(MS('2024-01-09 08:00'))
    for kind, status in [('status', 500), ('status', 503), ('malformed', 200), ('truncated', 200)]:
        binance.fail(kind, status=status, when=page2)
    binance.fail('status', status=429, headers={'Retry-After': '1'}, when=page3)
    st = bsettings(tmp_path, binance)
    ingest(start='2024-01-01', end='2024-01-10', timeframe='1h', settings=st, progress=False)
    assert_bars_equal(stored(st, 'BTC/USDT'), binance.klines('BTCUSDT', '1h', '2024-01-01', '2024-01-10'))
    reqs = binance.data_requests()
    assert [r['status'] for r in reqs if page2(r)] == [500, 503, 200, 200, 200] and reqs[4].get('truncated')
    p3 = [r for r in reqs if page3(r)]
    assert [r['status'] for r in p3] == [429, 200] and p3[1]['t'] - p3[0]['t'] >= 1.0  # Retry-After honoured
    assert len(LocalArchive(st.archive.dir).list('binance')) == 3  # failed attempts are not archived


@pytest.mark.parametrize(
    'kind,says',
    [
        ('status', 'last failure: HTTP 500'),
        ('malformed', 'last failure: malformed JSON'),
        ('truncated', 'last failure: network error'),
    ],
)
def test_binance_retry_budget_exhausted_nothing_stored(tmp_path, binance, kind, says):
    st = bsettings(tmp_path, binance, binance__retries=2)
    ingest(start='2024-01-01', end='2024-01-02', timeframe='1h', settings=st, progress=False)
    before = state(st)
    wm = FeatureStore(st.store.dir).watermark('binance', 'BTC/USDT', '1h')
    binance.fail(kind, times=-1, status=500, when=lambda r: r['query']['startTime'] > str(MS('2024-01-02')))
    with pytest.raises(ConnectorError) as e:  # page 1 (from Jan 2) succeeds, page 2 never does
        ingest(end='2024-01-10', timeframe='1h', settings=st, progress=False)
    msg = str(e.value)
    assert (
        msg.startswith('binance GET /api/v3/klines (BTCUSDT 1h from 2024-01-06 04:00')
        and 'failed after 3 attempts' in msg
        and says in msg
    ), msg
    assert state(st) == before and FeatureStore(st.store.dir).watermark('binance', 'BTC/USDT', '1h') == wm == UTC(
        '2024-01-01 23:00'
    )
    binance.faults.clear()  # the outage ends: the next run resumes from the watermark
    ingest(end='2024-01-10', timeframe='1h', settings=st, progress=False)
    assert_bars_equal(stored(st, 'BTC/USDT'), binance.klines('BTCUSDT', '1h', '2024-01-01', '2024-01-10'))


def test_binance_418_ban(tmp_path, binance):
    st = bsettings(tmp_path, binance)
    binance.fail('status', status=418)  # no Retry-After: waits ban_wait, then works
    con = get_connector('binance', st)
    assert (
        len(con.parse(con.fetch_raw([Instrument('BTC/USDT')], '1h', UTC('2024-01-01'), UTC('2024-01-02')), '1h')) == 24
    )
    r = binance.data_requests()
    assert r[0]['status'] == 418 and r[1]['t'] - r[0]['t'] >= 0.05
    binance.fail('status', status=418, headers={'Retry-After': '7200'})  # a two-hour ban: fail now, do not sleep
    t = time.monotonic()
    with pytest.raises(
        ConnectorError, match=r'HTTP 418.*wait 7200 s \(Retry-After\), more than max_retry_after = 300 s'
    ):
        con.fetch_raw([Instrument('BTC/USDT')], '1h', UTC('2024-01-01'), UTC('2024-01-02'))
    assert time.monotonic() - t < 5


def test_binance_client_errors_fail_at_once(tmp_path, binance):
    binance.fail('status', status=400, body=b'{"code":-1100,"msg":"Illegal characters found in parameter."}')
    con = get_connector('binance', bsettings(tmp_path, binance))
    with pytest.raises(ConnectorError, match=r'binance GET /api/v3/klines .*HTTP 400: .*Illegal characters'):
        con.fetch_raw([Instrument('BTC/USDT')], '1h', UTC('2024-01-01'), UTC('2024-01-02'))
    assert len(binance.data_requests()) == 1


def test_binance_empty_page_ends_pagination_then_incremental(tmp_path):
    with BinanceServer(data_until='2024-01-05 12:00') as s:
        st = bsettings(tmp_path, s)
        res = ingest(start='2024-01-05', end='2024-01-06', timeframe='1h', settings=st, progress=False)
        # a short page (asked again from after its last bar), then an empty one, asked once more: the range ends there
        assert [len(json.loads(r['body'])) for r in s.data_requests()] == [12, 0, 0]
        assert [r['query']['startTime'] for r in s.data_requests()] == [
            str(MS('2024-01-05')),
            *[str(MS('2024-01-05 12:00'))] * 2,
        ]
        assert any(
            'binance BTC/USDT' in w and 'returned no bars twice' in w and 'expects 12' in w for w in res.warnings
        ), res.warnings
        assert stored(st).timestamp.max() == UTC('2024-01-05 11:00')
        assert FeatureStore(st.store.dir).watermark('binance', 'BTC/USDT', '1h') == UTC('2024-01-05 11:00')
        s.data_until = None
        n = len(s.data_requests())  # more data has arrived
        ingest(end='2024-01-06', timeframe='1h', settings=st, progress=False)  # incremental: from the watermark
        assert s.data_requests()[n]['query']['startTime'] == str(MS('2024-01-05 12:00'))
        assert_bars_equal(stored(st), s.klines('BTCUSDT', '1h', '2024-01-05', '2024-01-06'))


def test_binance_never_stores_the_forming_bar(tmp_path, binance):
    st = bsettings(tmp_path, binance)
    now = pd.Timestamp.now(tz='UTC')
    ingest(
        start=(now - pd.Timedelta(hours=6)).floor('h'),
        end=now + pd.Timedelta(hours=3),
        timeframe='1h',
        settings=st,
        progress=False,
    )
    got = stored(st)
    assert got.timestamp.max() < pd.Timestamp.now(tz='UTC').floor('h') and len(got) >= 5
    assert all(int(r['query']['endTime']) < MS(pd.Timestamp.now(tz='UTC').floor('h')) for r in binance.data_requests())
    # a forming bar in a page (a server ignoring endTime) is dropped when parsing
    con = get_connector('binance', st)
    raw = con.fetch_raw([Instrument('ETH/USDT')], '1h', now - pd.Timedelta(hours=3), now)
    rows = json.loads(raw[0].data)
    forming = [rows[-1][0] + 3_600_000] + rows[-1][1:6] + [rows[-1][6] + 3_600_000] + rows[-1][7:]
    raw[0].data = json.dumps(rows + [forming]).encode()
    assert con.parse(raw, '1h').timestamp.max() == pd.Timestamp(rows[-1][0], unit='ms', tz='UTC')


# ================================================================== Oanda (oandapyV20)

TOKEN = 'oanda-test-token-123'


@pytest.fixture
def oanda(monkeypatch):
    monkeypatch.setenv('AUTOTRADER_OANDA_TOKEN', TOKEN)
    with OandaServer(token=TOKEN) as s:
        yield s


def osettings(tmp_path, server, symbols='EUR_USD:fx', **over):
    return make_settings(
        tmp_path, 'oanda', symbols, **{'oanda.api_url': server.url, 'oanda.page_count': 100, **fast('oanda'), **over}
    )


def test_oanda_pages_within_limit(tmp_path, oanda):
    st = osettings(tmp_path, oanda, symbols='EUR_USD:fx, USD/JPY:fx')
    res = ingest(start='2024-01-01', end='2024-01-15', timeframe='1h', settings=st, progress=False)
    for name, inst in (('EUR_USD', 'EUR_USD'), ('USD/JPY', 'USD_JPY')):
        got = stored(st, name)
        assert_bars_equal(got, oanda.candles(inst, '1h', '2024-01-01', '2024-01-15'), decimals=5)
        assert set(got.source) == {'oanda'} and (got.timestamp.dt.day_of_week != 5).all()  # no Saturday: FX calendar
    assert res.validation.completeness.completeness.tolist() == [1.0, 1.0]
    q = [r['query'] for r in oanda.data_requests() if 'EUR_USD' in r['path']]
    assert all(x['granularity'] == 'H1' and x['price'] == 'M' for x in q)
    assert len(q) >= 3 and all(
        ('count' in x) != ('to' in x) and x.get('count', '100') == '100' for x in q
    )  # never count with from/to
    assert all(r['headers'].get('Authorization') == f'Bearer {TOKEN}' for r in oanda.requests)
    keys = LocalArchive(st.archive.dir).list('oanda', 'EUR_USD')
    assert len(keys) == len(q) and sorted(LocalArchive(st.archive.dir).get(k) for k in keys) == sorted(
        r['body'] for r in oanda.data_requests() if 'EUR_USD' in r['path']
    )


def test_oanda_bid_ask_and_daily_alignment(tmp_path, oanda):
    st = osettings(tmp_path, oanda, oanda__price='bid_ask')
    ingest(start='2024-01-01', end='2024-01-15', timeframe='4h', settings=st, progress=False)
    got = stored(st)
    np.testing.assert_allclose(got.ask - got.bid, 2 * oanda.half_spread, atol=1e-9)
    np.testing.assert_allclose((got.ask + got.bid) / 2, got.close, atol=1e-9)
    assert {r['query']['price'] for r in oanda.data_requests()} == {'MBA'}
    con = get_connector('oanda', osettings(tmp_path, oanda))
    d = con.parse(con.fetch_raw([Instrument('EUR_USD', 'fx')], '1d', UTC('2024-01-01'), UTC('2024-02-01')), '1d')
    assert (d.timestamp == d.timestamp.dt.normalize()).all() and len(d) == 23  # 00:00 UTC daily candles
    assert oanda.data_requests()[-1]['query']['alignmentTimezone'] == 'UTC'


def test_oanda_faults_retried_and_incomplete_dropped(tmp_path, oanda):
    st = osettings(tmp_path, oanda)
    first = lambda r: r['query'].get('from') == '2024-01-01T00:00:00Z'
    oanda.fail('status', status=429, headers={'Retry-After': '1'}, when=first)
    for kind, status in [('status', 502), ('malformed', 200), ('truncated', 200)]:
        oanda.fail(kind, status=status, when=lambda r: not first(r))
    ingest(start='2024-01-01', end='2024-01-10', timeframe='1h', settings=st, progress=False)
    assert_bars_equal(stored(st), oanda.candles('EUR_USD', '1h', '2024-01-01', '2024-01-10'), decimals=5)
    reqs = oanda.data_requests()
    assert [r['status'] for r in reqs[:2]] == [429, 200] and reqs[1]['t'] - reqs[0]['t'] >= 1.0
    assert [r['status'] for r in reqs[2:5]] == [502, 200, 200] and reqs[4].get('truncated')
    # up to now: `to` is never in the future (Oanda refuses it) and the forming candle is not stored
    now = pd.Timestamp.now(tz='UTC')
    con = get_connector('oanda', st)
    bars = con.parse(
        con.fetch_raw([Instrument('EUR_USD', 'fx')], '1m', now - pd.Timedelta(hours=2), now + pd.Timedelta(hours=1)),
        '1m',
    )
    assert bars.empty or bars.timestamp.max() < pd.Timestamp.now(tz='UTC').floor('min')


def test_oanda_empty_page_ends_pagination_and_resume(tmp_path, oanda):
    st = osettings(tmp_path, oanda)
    oanda.fail(
        'empty', times=2, when=lambda r: r['query'].get('from', '') > '2024-01-09'
    )  # the third page: empty, twice
    res = ingest(start='2024-01-01', end='2024-01-20', timeframe='1h', settings=st, progress=False)
    assert len(oanda.data_requests()) == 4 and len(stored(st)) == 200  # asked again once, then stopped
    assert any('oanda EUR_USD' in w and 'returned no bars twice' in w for w in res.warnings), res.warnings
    wm = FeatureStore(st.store.dir).watermark('oanda', 'EUR_USD', '1h')
    assert wm == stored(st).timestamp.max()
    ingest(end='2024-01-20', timeframe='1h', settings=st, progress=False)  # resumes after the watermark
    assert oanda.data_requests()[4]['query']['from'] == (wm + pd.Timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')
    assert_bars_equal(stored(st), oanda.candles('EUR_USD', '1h', '2024-01-01', '2024-01-20'), decimals=5)


def test_oanda_short_pages_are_asked_again(tmp_path, monkeypatch):
    "A server that answers a from/to range with its default count (500 of 1,440 minute candles): every candle stored."
    monkeypatch.setenv('AUTOTRADER_OANDA_TOKEN', TOKEN)
    with OandaServer(token=TOKEN, page_cap=500) as s:
        st = osettings(tmp_path, s, oanda__page_count=5000)
        res = ingest(start='2024-01-03', end='2024-01-04', timeframe='1m', settings=st, progress=False)
        want = s.candles('EUR_USD', '1m', '2024-01-03', '2024-01-04')
        assert len(want) == 1440
        assert_bars_equal(stored(st), want, decimals=5)
        q = [r['query'] for r in s.data_requests()]
        assert [x['from'] for x in q] == ['2024-01-03T00:00:00Z', '2024-01-03T08:20:00Z', '2024-01-03T16:40:00Z']
        assert all(x['to'] == '2024-01-04T00:00:00Z' and 'count' not in x for x in q)
        assert [len(json.loads(r['body'])['candles']) for r in s.data_requests()] == [500, 500, 440]
        assert res.validation.completeness.completeness.tolist() == [1.0] and res.warnings == []
        assert res.received == 1440 and res.left_out == {}


def test_binance_short_pages_are_asked_again(tmp_path):
    "A server that caps every page below the limit asked for: paged by the last bar until the range end."
    with BinanceServer(page_cap=500) as s:
        st = bsettings(tmp_path, s, binance__page_limit=1000)
        res = ingest(start='2024-01-03', end='2024-01-04', timeframe='1m', settings=st, progress=False)
        assert_bars_equal(stored(st), s.klines('BTCUSDT', '1m', '2024-01-03', '2024-01-04'))
        assert [len(json.loads(r['body'])) for r in s.data_requests()] == [500, 500, 440]
        assert [int(r['query']['startTime']) for r in s.data_requests()] == [
            MS('2024-01-03'),
            MS('2024-01-03 08:20'),
            MS('2024-01-03 16:40'),
        ]
        assert res.received == len(stored(st)) == 1440 and res.warnings == []


def test_empty_pages_are_bounded(tmp_path):
    "A server that answers every page empty: asked twice, then the run ends with a warning (no endless loop, no failure)."
    with BinanceServer() as s:
        s.fail('empty', times=-1)
        st = bsettings(tmp_path, s)
        res = ingest(start='2024-01-03', end='2024-01-04', timeframe='1h', settings=st, progress=False)
        assert len(s.data_requests()) == 2 and res.received == 0 and not res.committed
        assert any('returned no bars twice' in w and 'expects 24' in w for w in res.warnings), res.warnings


def test_oanda_exhausted_token_and_client_errors(tmp_path, oanda, monkeypatch):
    st = osettings(tmp_path, oanda, oanda__retries=1)
    before = state(st)
    oanda.fail('status', times=-1, status=503)
    with pytest.raises(
        ConnectorError,
        match=r"oanda GET /v3/instruments/EUR_USD/candles \(H1 from 2024-01-01T00:00:00Z\): "
        r"failed after 2 attempts .*last failure: HTTP 503: Internal server error",
    ):
        ingest(start='2024-01-01', end='2024-01-03', timeframe='1h', settings=st, progress=False)
    assert state(st) == before and not LocalArchive(st.archive.dir).list()
    oanda.faults.clear()
    monkeypatch.setenv('AUTOTRADER_OANDA_TOKEN', 'wrong')
    with pytest.raises(ConnectorError, match='HTTP 401 Insufficient authorization.*AUTOTRADER_OANDA_TOKEN'):
        get_connector('oanda', st).fetch_raw([Instrument('EUR_USD', 'fx')], '1h', UTC('2024-01-01'), UTC('2024-01-02'))
    monkeypatch.setenv('AUTOTRADER_OANDA_TOKEN', TOKEN)
    with pytest.raises(ConnectorError, match="HTTP 400: Invalid value specified for 'instrument'"):
        get_connector('oanda', st).fetch_raw([Instrument('XAU-XAG', 'fx')], '1h', UTC('2024-01-01'), UTC('2024-01-02'))
    monkeypatch.delenv('AUTOTRADER_OANDA_TOKEN')  # no token and the real API: a settings error naming it
    with pytest.raises(SettingsError, match='AUTOTRADER_OANDA_TOKEN'):
        get_connector('oanda', make_settings(tmp_path, 'oanda', 'EUR_USD:fx')).fetch_raw(
            [Instrument('EUR_USD', 'fx')], '1h', UTC('2024-01-01'), UTC('2024-01-02')
        )


# ================================================================== Interactive Brokers (ib_async)

from ib_async import BarData, BarDataList
from ib_async.wrapper import RequestError


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t

    def sleep(self, d):
        self.t += d


class FakeIB:
    """Stands in for `ib_async.IB` at its boundary: the methods IBKRConnector calls, with their signatures and IB's
    behaviour (request errors raise only with RaiseRequestErrors, a time-out returns an empty list after `timeout`,
    requests while disconnected raise ConnectionError('Not connected'))."""

    CALENDAR = {'CASH': 'fx', 'STK': 'equity_us', 'CRYPTO': 'crypto'}

    def __init__(self, clock, refuse=0, script=(), known=('EUR', 'SPY', 'BTC')):
        self.clock, self.refuse, self.script, self.known = clock, refuse, list(script), known
        self.RaiseRequestErrors = False
        self.connected, self.connects, self.requests = False, [], []

    def isConnected(self):
        return self.connected

    def connect(
        self, host='127.0.0.1', port=7497, clientId=1, timeout=4, readonly=False, account='', raiseSyncErrors=False
    ):
        self.connects.append(dict(host=host, port=port, clientId=clientId, readonly=readonly))
        if self.refuse:
            self.refuse -= 1
            raise ConnectionRefusedError(111, 'Connect call failed')
        self.connected = True

    def disconnect(self):
        self.connected = False

    def qualifyContracts(self, *contracts):
        if not self.connected:
            raise ConnectionError('Not connected')
        out = []
        for c in contracts:
            if c.symbol in self.known:
                c.conId = 1000 + self.known.index(c.symbol)
                out.append(c)
        return out

    def reqHistoricalData(
        self,
        contract,
        endDateTime,
        durationStr,
        barSizeSetting,
        whatToShow,
        useRTH,
        formatDate=1,
        keepUpToDate=False,
        chartOptions=[],
        timeout=60,
    ):
        if not self.connected:
            raise ConnectionError('Not connected')
        self.requests.append(
            dict(
                t=self.clock(),
                symbol=contract.symbol,
                end=endDateTime,
                duration=durationStr,
                bar=barSizeSetting,
                what=whatToShow,
                rth=useRTH,
                formatDate=formatDate,
            )
        )
        action = self.script.pop(0) if self.script else None
        if action == 'timeout':
            self.clock.sleep(timeout)
            return BarDataList()
        if action == 'disconnect':
            self.connected = False
            raise ConnectionError('Socket disconnect')
        if isinstance(action, RequestError):
            if self.RaiseRequestErrors:
                raise action
            return BarDataList()
        n, unit = durationStr.split()
        days = 365 if unit == 'Y' else int(n)
        tf = {'1 min': '1m', '1 hour': '1h', '1 day': '1d', '5 mins': '5m'}[barSizeSetting]
        end = pd.Timestamp(endDateTime)
        b = sim_bars(
            contract.symbol, self.CALENDAR[contract.secType], tf, end - pd.Timedelta(days=days), end, outage_rate=0
        )
        out = BarDataList()
        for t, o, h, l, c, v in zip(b.timestamp, b.open, b.high, b.low, b.close, b.volume):
            d = t.date() if tf == '1d' else t.to_pydatetime()
            out.append(
                BarData(
                    date=d,
                    open=o,
                    high=h,
                    low=l,
                    close=c,
                    volume=-1 if whatToShow == 'MIDPOINT' else v,
                    average=c,
                    barCount=10,
                )
            )
        return out


@pytest.fixture
def ib(monkeypatch):
    clock = Clock()
    made = []

    def factory(**kw):
        def make():
            made.append(FakeIB(clock, **kw))
            return made[-1]

        monkeypatch.setattr(IBKRConnector, 'ib_factory', staticmethod(make))
        return made

    monkeypatch.setattr(IBKRConnector, 'clock', staticmethod(clock))
    monkeypatch.setattr(IBKRConnector, 'sleep', staticmethod(clock.sleep))
    factory.clock = clock
    return factory


def isettings(tmp_path, symbols='EUR-USD:fx', **over):
    return make_settings(tmp_path, 'ibkr', symbols, **{'ibkr.port': 4002, 'ibkr.client_id': 9, **fast('ibkr'), **over})


def test_ibkr_ingest_through_ib_boundary(tmp_path, ib):
    made = ib(
        script=[
            RequestError(5, 162, 'Historical Market Data Service error message:API historical data query cancelled: 1'),
            'disconnect',
            'timeout',
        ]
    )
    st = isettings(tmp_path, 'EUR-USD:fx, SPY:equity_us')
    res = ingest(start='2024-01-01', end='2024-03-01', timeframe='1h', settings=st, progress=False)
    fake = made[0]
    assert (
        fake.RaiseRequestErrors and fake.connects == [dict(host='127.0.0.1', port=4002, clientId=9, readonly=True)] * 2
    )  # reconnected once
    for sym, cal in (('EUR-USD', 'fx'), ('SPY', 'equity_us')):
        got = stored(st, sym)
        want = sim_bars('EUR' if sym == 'EUR-USD' else 'SPY', cal, '1h', '2024-01-01', '2024-03-01', outage_rate=0)
        assert_bars_equal(got, want)
        assert set(got.source) == {'ibkr'}
    assert (stored(st, 'EUR-USD').volume == 0).all()  # MIDPOINT volume -1 → 0
    assert res.validation.completeness.completeness.tolist() == [1.0, 1.0]
    reqs = fake.requests
    eur = [r for r in reqs if r['symbol'] == 'EUR']
    assert [(r['duration'], r['what'], r['bar'], r['rth'], r['formatDate']) for r in eur][-2:] == [
        ('30 D', 'MIDPOINT', '1 hour', True, 2)
    ] * 2
    assert [r['end'] for r in eur[3:]] == [c[0].to_pydatetime() for c in ib_chunks('2024-01-01', '2024-03-01', '1h')]
    assert eur[3]['t'] - eur[2]['t'] >= 0.95 * 120  # a timed-out request is retried (after its time-out)
    assert eur[1]['t'] - eur[0]['t'] >= 15  # a retried identical request waits IB's 15 s
    assert {r['what'] for r in reqs if r['symbol'] == 'SPY'} == {'TRADES'}
    keys = LocalArchive(st.archive.dir).list('ibkr')
    assert len(keys) == 4 and all(
        json.loads(LocalArchive(st.archive.dir).get(k))['request']['barSizeSetting'] == '1 hour' for k in keys
    )


def test_ibkr_errors(tmp_path, ib):
    made = ib(refuse=2)  # TWS not up yet: retried, then connected
    con = get_connector('ibkr', isettings(tmp_path))
    assert (
        len(con.parse(con.fetch_raw([Instrument('EUR-USD', 'fx')], '1d', UTC('2024-01-01'), UTC('2024-02-01')), '1d'))
        == 23
    )
    assert len(made[0].connects) == 3
    made = ib(refuse=99)
    with pytest.raises(
        ConnectorError, match=r'failed after 6 attempts.*cannot connect to TWS/Gateway at 127.0.0.1:4002 clientId 9'
    ):
        get_connector('ibkr', isettings(tmp_path)).fetch_raw(
            [Instrument('SPY', 'equity_us')], '1h', UTC('2024-01-01'), UTC('2024-01-02')
        )
    made = ib(script=[RequestError(3, 354, 'Requested market data is not subscribed.')])
    with pytest.raises(ConnectorError, match='IB error 354: Requested market data is not subscribed'):
        get_connector('ibkr', isettings(tmp_path)).fetch_raw(
            [Instrument('SPY', 'equity_us')], '1h', UTC('2024-01-01'), UTC('2024-01-02')
        )
    assert len(made[0].requests) == 1  # not retried
    made = ib(
        script=[
            RequestError(
                3, 162, 'Historical Market Data Service error message:HMDS query returned no data: SPY@SMART Trades'
            )
        ]
    )
    con = get_connector('ibkr', isettings(tmp_path))
    raw = con.fetch_raw([Instrument('SPY', 'equity_us')], '1h', UTC('2024-01-01'), UTC('2024-01-02'))
    assert len(raw) == 1 and json.loads(raw[0].data)['bars'] == [] and con.parse(raw, '1h').empty
    with pytest.raises(ConnectorError, match=r"no contract for instrument 'QQQ'"):
        get_connector('ibkr', isettings(tmp_path)).fetch_raw(
            [Instrument('QQQ', 'equity_us')], '1h', UTC('2024-01-01'), UTC('2024-01-02')
        )


def test_ibkr_pacer_spreads_many_chunks(tmp_path, ib):
    "75 one-day chunks of 1-minute bars: never more than 60 requests in any 10 minutes."
    made = ib()
    con = get_connector('ibkr', isettings(tmp_path, ibkr__use_rth='false'))
    raw = con.fetch_raw([Instrument('BTC-USD', 'crypto')], '1m', UTC('2024-01-01'), UTC('2024-03-16'))
    t = np.array([r['t'] for r in made[0].requests])
    assert len(t) == 75 and all((t[i + 60] - t[i]) >= 600 for i in range(len(t) - 60))
    assert {r['what'] for r in made[0].requests} == {'AGGTRADES'} and len(raw) == 75


@hsettings(max_examples=150, deadline=None)
@given(
    start=hs.datetimes(dt.datetime(2015, 1, 1), dt.datetime(2030, 1, 1)),
    span=hs.integers(1, 2_000_000),
    tf=hs.sampled_from(sorted(IB_CHUNK_DAYS)),
)
def test_ib_chunks_cover_the_range(start, span, tf):
    s = pd.Timestamp(start, tz='UTC')
    e = s + pd.Timedelta(minutes=span)
    ch = ib_chunks(s, e, tf)
    days = [365 if d == '1 Y' else int(d.split()[0]) for _, d in ch]
    assert all(1 <= d <= IB_CHUNK_DAYS[tf] for d in days)
    assert ch[-1][0] == e and ch[0][0] - pd.Timedelta(days=days[0]) <= s < ch[0][0]
    assert all(ch[i][0] == ch[i + 1][0] - pd.Timedelta(days=days[i + 1]) for i in range(len(ch) - 1))  # contiguous


@hsettings(max_examples=100, deadline=None)
@given(reqs=hs.lists(hs.tuples(hs.floats(0, 30), hs.integers(0, 8), hs.integers(0, 3)), min_size=1, max_size=150))
def test_ib_pacer_rules_hold(reqs):
    "Whatever the requests, the times the pacer lets them out keep IB's three rules."
    clock = Clock()
    p = IBPacer()
    sent = []
    for gap, key, contract in reqs:
        clock.sleep(gap)
        p.wait(key, contract, clock, clock.sleep)
        sent.append((clock(), key, contract))
    t = [x[0] for x in sent]
    assert all(t[i + 60] - t[i] >= 600 - 1e-6 for i in range(len(t) - 60))
    for k in {x[1] for x in sent}:
        tk = [x[0] for x in sent if x[1] == k]
        assert all(b - a >= 15 - 1e-6 for a, b in zip(tk, tk[1:]))
    for c in {x[2] for x in sent}:
        tc = [x[0] for x in sent if x[2] == c]
        assert all(tc[i + 6] - tc[i] >= 2 - 1e-6 for i in range(len(tc) - 6))


# ================================================================== end to end: autotrader run ingest


def cli(*args, cwd):
    return autotrader_cli(*args, cwd=cwd, env={'NO_PROXY': '127.0.0.1,localhost', 'no_proxy': '127.0.0.1,localhost'})


@pytest.mark.e2e
def test_cli_ingest_binance_from_settings_alone(tmp_path, binance):
    (tmp_path / 'settings.ini').write_text(f"""[data]
source = binance
timeframe = 1h

[instruments]
symbols = BTC/USDT:crypto, ETH/USDT:crypto

[binance]
api_url = {binance.url}
page_limit = 50
retries = 2
backoff_base = 0.01
backoff_max = 0.02
""")
    r = cli('run', 'ingest', '--no-progress', '-p', 'start=2024-01-01', '-p', 'end=2024-01-04', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = Path(r.stdout.split('run dir:')[1].split()[0])
    html = (run_dir / 'report.html').read_text()
    assert 'binance' in html and 'BTC/USDT' in html
    st = load_settings(tmp_path / 'settings.ini', env={})
    for sym, mid in (('BTC/USDT', 'BTCUSDT'), ('ETH/USDT', 'ETHUSDT')):
        assert_bars_equal(stored(st, sym), binance.klines(mid, '1h', '2024-01-01', '2024-01-04'))
    assert json.loads((run_dir / 'run.json').read_text())['status'] == 'ok'
    before = state(st)

    binance.fail('status', times=-1, status=500)  # the broker is down: exit 1, the store is unchanged
    r = cli('run', 'ingest', '--no-progress', '-p', 'end=2024-01-06', cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'HTTP 500' in r.stdout and 'failed after 3 attempts' in r.stdout
    assert state(st) == before


# ================================================================== every source: rows in = stored + quarantined + left out


def _raw_rows(st, res) -> int:
    "Rows in the raw payloads this run archived, counted from the archived bytes in each source's own format."
    arc, n = LocalArchive(st.archive.dir), 0
    for a in res.archived:
        data = arc.get(a.key)
        if res.source in ('sim', 'file'):
            n += sum(1 for l in data.decode().splitlines()[1:] if l.strip())
        elif res.source == 'binance':
            n += len(json.loads(data))
        elif res.source == 'oanda':
            n += len(json.loads(data)['candles'])
        elif res.source == 'ibkr':
            n += len(json.loads(data)['bars'])
    return n


def _accounted(st, res, source):
    v, m = res.validation, res.metrics()
    assert res.source == source and res.received > 0
    assert res.received == _raw_rows(st, res), (res.received, _raw_rows(st, res))
    assert res.received == len(v.clean) + len(v.quarantine) + sum(res.left_out.values()), res.accounting()
    assert (m['rows_received'], m['rows_clean'], m['rows_quarantined'], m['rows_left_out']) == (
        res.received,
        len(v.clean),
        len(v.quarantine),
        sum(res.left_out.values()),
    )
    assert len(stored(st)) == len(v.clean)
    acc = res.accounting()['count']
    assert acc['received'] == acc.drop('received').sum()


def test_every_source_accounts_for_every_row(tmp_path, monkeypatch, ib):
    # sim
    st = make_settings(tmp_path / 'sim', 'sim', 'BTC-USD:crypto, SPY:equity_us')
    _accounted(st, ingest(start='2024-01-01', end='2024-01-20', timeframe='1h', settings=st, progress=False), 'sim')
    # file: two instruments, one requested, a start inside the file, a bad price
    b = sim_bars('EURUSD', 'fx', '1h', '2024-01-01', '2024-01-13', outage_rate=0)
    df = pd.concat([b.assign(symbol='EURUSD'), b.assign(symbol='GBPUSD')])[
        ['timestamp', 'symbol', 'open', 'high', 'low', 'close', 'volume']
    ]
    df.iloc[50, df.columns.get_loc('close')] = -1.0
    df.to_csv(tmp_path / 'fx.csv', index=False)
    st = make_settings(tmp_path / 'file', 'file', '', file__path=str(tmp_path / 'fx.csv'))
    res = ingest(instruments='EURUSD:fx', start='2024-01-03', timeframe='1h', settings=st, progress=False)
    _accounted(st, res, 'file')
    assert res.left_out == {'not_requested': len(b), 'outside_range': int((b.timestamp < UTC('2024-01-03')).sum())}
    assert len(res.validation.quarantine) == 1
    # binance, oanda: real clients against the local servers
    with BinanceServer(page_cap=70) as s:
        st = bsettings(tmp_path / 'binance', s)
        _accounted(
            st, ingest(start='2024-01-01', end='2024-01-10', timeframe='1h', settings=st, progress=False), 'binance'
        )
    monkeypatch.setenv('AUTOTRADER_OANDA_TOKEN', TOKEN)
    with OandaServer(token=TOKEN, page_cap=70) as s:
        st = osettings(tmp_path / 'oanda', s)
        _accounted(
            st, ingest(start='2024-01-01', end='2024-01-10', timeframe='1h', settings=st, progress=False), 'oanda'
        )
    # ibkr: ib_async's IB interface through the stand-in
    ib()
    st = isettings(tmp_path / 'ibkr', 'EUR-USD:fx, SPY:equity_us')
    _accounted(st, ingest(start='2024-01-01', end='2024-02-01', timeframe='1h', settings=st, progress=False), 'ibkr')
