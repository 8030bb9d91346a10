"""Local fake-broker HTTP servers on 127.0.0.1 that answer in each broker's documented wire format.

- `BinanceServer`: `GET /api/v3/exchangeInfo`, `GET /api/v3/klines` (spot REST API: klines are arrays
  `[openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, takerBuyBase, takerBuyQuote, ignore]`,
  prices and quantities as strings, `limit` ≤ 1000, `startTime`/`endTime` inclusive, in ms).
- `OandaServer`: `GET /v3/instruments/{instrument}/candles` (v20 REST API: `granularity`, `price` (M, B, A and
  combinations), `from`/`to` (RFC 3339), `count` ≤ 5000 and not together with both `from` and `to`; candles with
  `complete`, `volume`, `time` (RFC 3339, nanoseconds) and `mid`/`bid`/`ask` blocks of strings; a Bearer token
  is required).

The bars themselves are the seeded synthetic market (`autotrader.data.connectors.sim_bars`): deterministic, so a
test can compare what the connector stored with what the server holds. The bar opening at the server's `now` is
served as still forming (Binance: `closeTime` in the future; Oanda: `complete: false`).

Faults are scripted per request with `fail(kind, ...)`: `status` (any HTTP status, optional headers such as
Retry-After, optional body), `malformed` (200 with a body that is not JSON), `truncated` (a Content-Length larger
than the body, then the connection closes), `empty` (200 with no bars). Every request is recorded in `requests`.
`page_cap=N` makes a server answer at most N bars per request whatever it was asked (a server applying a default
`count` of 500 to a `from`/`to` range): a correct client asks again from after the last bar.
"""

from __future__ import annotations
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from autotrader.data.connectors import sim_bars

STEP_S = {'1m': 60, '5m': 300, '15m': 900, '30m': 1800, '1h': 3600, '4h': 14400, '1d': 86400}
OANDA_TF = {'M1': '1m', 'M5': '5m', 'M15': '15m', 'M30': '30m', 'H1': '1h', 'H4': '4h', 'D': '1d'}


@dataclass
class Fault:
    kind: str  # status | malformed | truncated | empty
    times: int = 1  # how many matching requests it applies to (-1: forever)
    status: int = 500
    headers: dict = field(default_factory=dict)
    body: bytes | None = None
    when: object = None  # predicate on the request record, None = any data request


class _Server:
    "A threaded HTTP server on a free 127.0.0.1 port; subclasses implement `route(req) -> (status, headers, body)`."

    data_paths = ()

    def __init__(self, now=None, page_cap=None):
        self.page_cap = page_cap
        self.now = (
            pd.Timestamp(now, tz='UTC')
            if now is not None and pd.Timestamp(now).tzinfo is None
            else (pd.Timestamp(now) if now is not None else None)
        )
        self.requests: list[dict] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer._handle(self)

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *a):
        self.httpd.shutdown()
        self.httpd.server_close()

    def current_time(self) -> pd.Timestamp:
        return self.now if self.now is not None else pd.Timestamp.now(tz='UTC')

    def fail(self, kind, times=1, status=500, headers=None, body=None, when=None):
        "Script a fault for the next `times` matching data requests (-1: every one)."
        with self._lock:
            self.faults.append(Fault(kind, times, status, dict(headers or {}), body, when))
        return self

    def data_requests(self):
        return [r for r in self.requests if any(p in r['path'] for p in self.data_paths)]

    def _fault(self, req):
        if not any(p in req['path'] for p in self.data_paths):
            return None
        with self._lock:
            for f in self.faults:
                if f.times != 0 and (f.when is None or f.when(req)):
                    if f.times > 0:
                        f.times -= 1
                    return f
        return None

    def _handle(self, h):
        u = urlsplit(h.path)
        req = dict(
            t=time.monotonic(),
            path=u.path,
            query={k: v[-1] for k, v in parse_qs(u.query).items()},
            headers=dict(h.headers),
        )
        with self._lock:
            self.requests.append(req)
        f = self._fault(req)
        if f is None:
            status, headers, body = self.route(req)
        elif f.kind == 'status':
            status, headers = f.status, {'Content-Type': 'application/json', **f.headers}
            body = f.body if f.body is not None else self.error_body(f.status)
        elif f.kind == 'malformed':
            status, headers, body = (
                200,
                {'Content-Type': 'application/json'},
                f.body or b'<html><body>upstream error</body></html>',
            )
        elif f.kind == 'empty':
            status, headers, body = 200, {'Content-Type': 'application/json'}, self.empty_body(req)
        elif f.kind == 'truncated':
            status, headers, body = self.route(req)
            req.update(status=status, body=body[: max(1, len(body) // 2)], truncated=True)
            h.send_response(status)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header('Content-Length', str(len(body)))
            h.send_header('Connection', 'close')
            h.end_headers()
            h.wfile.write(body[: max(1, len(body) // 2)])
            h.wfile.flush()
            h.close_connection = True
            return
        else:
            raise AssertionError(f.kind)
        req.update(status=status, body=body)
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header('Content-Length', str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def bars(self, symbol, calendar, tf, start, end) -> pd.DataFrame:
        "The server's bars in [start, end), never beyond the bar forming at `now`."
        step = pd.Timedelta(seconds=STEP_S[tf])
        end = min(pd.Timestamp(end), self.current_time().floor(step) + step)
        if start >= end:
            return sim_bars(symbol, calendar, tf, '2020-01-01', '2020-01-01 00:00:01', outage_rate=0).iloc[:0]
        return sim_bars(symbol, calendar, tf, start, end, outage_rate=0)


def _j(obj) -> bytes:
    return json.dumps(obj, separators=(',', ':')).encode()


class BinanceServer(_Server):
    "Binance spot REST API: exchangeInfo and klines (https://developers.binance.com/docs/binance-spot-api-docs/rest-api)."

    data_paths = ('/api/v3/klines',)

    def __init__(self, symbols=('BTCUSDT', 'ETHUSDT'), now=None, data_until=None, listed=None, page_cap=None):
        super().__init__(now, page_cap)
        self.symbols = {s: (s[:-4], s[-4:]) for s in symbols}  # ...USDT pairs
        self.data_until = pd.Timestamp(data_until, tz='UTC') if data_until is not None else None
        self.listed = pd.Timestamp(listed or '2017-08-17', tz='UTC')

    def error_body(self, status):
        return _j(
            {'code': -1003, 'msg': 'Too many requests; current limit is 6000 request weight per 1 MINUTE.'}
            if status in (418, 429)
            else {'code': -1001, 'msg': 'Internal error; unable to process your request.'}
        )

    def empty_body(self, req):
        return b'[]'

    def route(self, req):
        js = {'Content-Type': 'application/json;charset=UTF-8'}
        if req['path'] == '/api/v3/exchangeInfo':
            return 200, js, _j(self.exchange_info())
        if req['path'] == '/api/v3/ping':
            return 200, js, b'{}'
        if req['path'] == '/api/v3/time':
            return 200, js, _j({'serverTime': int(self.current_time().timestamp() * 1000)})
        if req['path'] == '/api/v3/klines':
            q = req['query']
            if q.get('symbol') not in self.symbols:
                return 400, js, _j({'code': -1121, 'msg': 'Invalid symbol.'})
            tf = q.get('interval')
            if tf not in STEP_S:
                return 400, js, _j({'code': -1120, 'msg': 'Invalid interval.'})
            limit = int(q.get('limit', 500))
            if not 1 <= limit <= 1000:
                return 400, js, _j({'code': -1130, 'msg': "Invalid data sent for a parameter."})
            step = pd.Timedelta(seconds=STEP_S[tf])
            start = (
                pd.Timestamp(int(q['startTime']), unit='ms', tz='UTC')
                if 'startTime' in q
                else self.current_time() - step * limit
            )
            start = max(start.ceil(step), self.listed)
            end = (
                pd.Timestamp(int(q['endTime']), unit='ms', tz='UTC') + pd.Timedelta(milliseconds=1)
                if 'endTime' in q
                else start + step * limit
            )
            end = min(end, start + step * limit)
            if self.data_until is not None:
                end = min(end, self.data_until)
            b = self.bars(q['symbol'], 'crypto', tf, start, end).head(min(limit, self.page_cap or limit))
            ms = b.timestamp.astype('int64') // 1_000_000
            sms = int(step.total_seconds() * 1000)
            rows = [
                [
                    int(t),
                    f'{o:.8f}',
                    f'{hi:.8f}',
                    f'{lo:.8f}',
                    f'{c:.8f}',
                    f'{v:.8f}',
                    int(t) + sms - 1,
                    f'{v * c:.8f}',
                    100 + i % 50,
                    f'{v / 2:.8f}',
                    f'{v * c / 2:.8f}',
                    '0',
                ]
                for i, (t, o, hi, lo, c, v) in enumerate(zip(ms, b.open, b.high, b.low, b.close, b.volume))
            ]
            return 200, js, _j(rows)
        return 404, js, _j({'code': -1000, 'msg': f'unknown path {req["path"]}'})

    def exchange_info(self):
        f = [
            {
                'filterType': 'PRICE_FILTER',
                'minPrice': '0.01000000',
                'maxPrice': '1000000.00000000',
                'tickSize': '0.01000000',
            },
            {'filterType': 'LOT_SIZE', 'minQty': '0.00001000', 'maxQty': '9000.00000000', 'stepSize': '0.00001000'},
            {
                'filterType': 'NOTIONAL',
                'minNotional': '5.00000000',
                'applyMinToMarket': True,
                'maxNotional': '9000000.00000000',
                'applyMaxToMarket': False,
                'avgPriceMins': 5,
            },
        ]
        return {
            'timezone': 'UTC',
            'serverTime': int(self.current_time().timestamp() * 1000),
            'rateLimits': [{'rateLimitType': 'REQUEST_WEIGHT', 'interval': 'MINUTE', 'intervalNum': 1, 'limit': 6000}],
            'exchangeFilters': [],
            'symbols': [
                {
                    'symbol': s,
                    'status': 'TRADING',
                    'baseAsset': b,
                    'baseAssetPrecision': 8,
                    'quoteAsset': q,
                    'quotePrecision': 8,
                    'quoteAssetPrecision': 8,
                    'baseCommissionPrecision': 8,
                    'quoteCommissionPrecision': 8,
                    'orderTypes': ['LIMIT', 'LIMIT_MAKER', 'MARKET', 'STOP_LOSS_LIMIT', 'TAKE_PROFIT_LIMIT'],
                    'icebergAllowed': True,
                    'ocoAllowed': True,
                    'quoteOrderQtyMarketAllowed': True,
                    'allowTrailingStop': True,
                    'cancelReplaceAllowed': True,
                    'isSpotTradingAllowed': True,
                    'isMarginTradingAllowed': True,
                    'filters': f,
                    'permissions': [],
                    'permissionSets': [['SPOT', 'MARGIN']],
                    'defaultSelfTradePreventionMode': 'EXPIRE_MAKER',
                    'allowedSelfTradePreventionModes': ['EXPIRE_TAKER', 'EXPIRE_MAKER', 'EXPIRE_BOTH'],
                }
                for s, (b, q) in self.symbols.items()
            ],
        }

    def klines(self, symbol, tf, start, end) -> pd.DataFrame:
        "The bars the server holds for [start, end) (what a correct client must end up with)."
        return self.bars(symbol, 'crypto', tf, pd.Timestamp(start, tz='UTC'), pd.Timestamp(end, tz='UTC'))


def _rfc3339(ts: pd.Timestamp) -> str:
    return ts.strftime('%Y-%m-%dT%H:%M:%S.000000000Z')


class OandaServer(_Server):
    "Oanda v20 REST API: instrument candles (https://developer.oanda.com/rest-live-v20/instrument-ep/)."

    data_paths = ('/candles',)

    def __init__(
        self, instruments=('EUR_USD', 'USD_JPY'), token='test-token', now=None, half_spread=0.0001, page_cap=None
    ):
        super().__init__(now, page_cap)
        self.instruments, self.token, self.half_spread = set(instruments), token, half_spread

    def error_body(self, status):
        return _j({'errorMessage': 'Requests are being rate limited' if status == 429 else 'Internal server error'})

    def empty_body(self, req):
        inst = req['path'].split('/')[3]
        return _j({'instrument': inst, 'granularity': req['query'].get('granularity', 'S5'), 'candles': []})

    def route(self, req):
        js = {'Content-Type': 'application/json', 'RequestID': str(len(self.requests))}
        parts = req['path'].strip('/').split('/')
        if len(parts) != 4 or parts[:2] != ['v3', 'instruments'] or parts[3] != 'candles':
            return 404, js, _j({'errorMessage': f'unknown path {req["path"]}'})
        if self.token and req['headers'].get('Authorization') != f'Bearer {self.token}':
            return 401, js, _j({'errorMessage': 'Insufficient authorization to perform request.'})
        inst, q = parts[2], req['query']
        if inst not in self.instruments:
            return 400, js, _j({'errorMessage': "Invalid value specified for 'instrument'"})
        g = q.get('granularity', 'S5')
        if g not in OANDA_TF:
            return 400, js, _j({'errorMessage': "Invalid value specified for 'granularity'"})
        tf = OANDA_TF[g]
        step = pd.Timedelta(seconds=STEP_S[tf])
        price = q.get('price', 'M')
        if not price or set(price) - set('MBA'):
            return 400, js, _j({'errorMessage': "Invalid value specified for 'price'"})
        if 'from' in q and 'to' in q and 'count' in q:
            return 400, js, _j({'errorMessage': "'count' cannot be specified when 'to' and 'from' parameters are set"})
        if g == 'D' and (q.get('alignmentTimezone'), q.get('dailyAlignment')) != ('UTC', '0'):
            return 400, js, _j({'errorMessage': 'this fake server only serves daily candles aligned at 00:00 UTC'})
        now = self.current_time()
        frm = pd.Timestamp(q['from']) if 'from' in q else None
        to = pd.Timestamp(q['to']) if 'to' in q else None
        if to is not None and to > now:
            return 400, js, _j({'errorMessage': "Invalid value specified for 'to'. Time is in the future"})
        if frm is not None and to is not None:
            if (to - frm) / step > 5000:
                return 400, js, _j({'errorMessage': "Maximum value for 'count' exceeded"})
            b = self.bars(inst, 'fx', tf, frm.ceil(step), to)
        else:
            count = int(q.get('count', 500))
            if not 1 <= count <= 5000:
                return 400, js, _j({'errorMessage': "Maximum value for 'count' exceeded"})
            if frm is None:  # the `count` candles up to `to` (default: now)
                b = self.bars(inst, 'fx', tf, (to or now) - step * count * 3, to or now + step).tail(count)
            else:
                b = self.bars(inst, 'fx', tf, frm.ceil(step), frm.ceil(step) + step * count * 3).head(count)
        if self.page_cap:
            b = b.head(self.page_cap)
        forming = now.floor(step)
        candles = []
        for t, o, hi, lo, c, v in zip(b.timestamp, b.open, b.high, b.low, b.close, b.volume):
            d = {'complete': bool(t < forming), 'volume': int(v * 10) + 1, 'time': _rfc3339(t)}
            fmt = lambda x: f'{x:.5f}'
            o, hi, lo, c = (round(x, 5) for x in (o, hi, lo, c))  # mid at 5 decimals; bid/ask ± half_spread
            for k, off in (('mid', 0.0), ('bid', -self.half_spread), ('ask', self.half_spread)):
                if k[0].upper() in price:
                    d[k] = {'o': fmt(o + off), 'h': fmt(hi + off), 'l': fmt(lo + off), 'c': fmt(c + off)}
            candles.append(d)
        return 200, js, _j({'instrument': inst, 'granularity': g, 'candles': candles})

    def candles(self, inst, tf, start, end) -> pd.DataFrame:
        "The complete bars the server holds for [start, end), prices rounded as served."
        b = self.bars(inst, 'fx', tf, pd.Timestamp(start, tz='UTC'), pd.Timestamp(end, tz='UTC'))
        b = b[b.timestamp < self.current_time().floor(pd.Timedelta(seconds=STEP_S[tf]))].reset_index(drop=True)
        for c in ('open', 'high', 'low', 'close'):
            b[c] = b[c].round(5)
        return b
