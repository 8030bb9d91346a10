"Helpers of the monitor tests: sim data with a planted shift in a feature store, a webhook receiver, an SMTP server."

import json
import threading
import http.server
import numpy as np
import pandas as pd
from autotrader.data.connectors import sim_bars
from autotrader.features.basic import feature_set
from autotrader.features.store import FeatureStore

START = pd.Timestamp('2024-01-01', tz='UTC')


def sim_store(root, symbols=('BTC-USD', 'ETH-USD'), days=70, seed=0, shift_from=None, scale=3.0):
    """Sim bars (stationary: one volatility regime, no AR component, no outages) and their `basic` features in a
    store at `root`. From `shift_from` on, every log return is multiplied by `scale` (a planted volatility shift)."""
    bars = []
    for s in symbols:
        b = sim_bars(
            s,
            'crypto',
            '1h',
            START,
            START + pd.Timedelta(days=days),
            seed=seed,
            alpha=0.0,
            regime_persistence=1.0,
            outage_rate=0.0,
        )
        if shift_from is not None:
            r = np.log(b.close).diff().fillna(0).to_numpy()
            k = (b.timestamp >= pd.Timestamp(shift_from, tz='UTC')).to_numpy()
            c = b.close.iloc[0] * np.exp(np.cumsum(np.where(k, r * scale, r)))
            f = c / b.close.to_numpy()
            b = b.assign(open=b.open * f, high=b.high * f, low=b.low * f, close=c)
        bars.append(b)
    bars = pd.concat(bars, ignore_index=True)
    fs = feature_set('basic')
    store = FeatureStore(root)
    with store.transaction('test') as tx:
        tx.write('bars', bars, kind='bars', version='1')
        tx.write(f'features/{fs.id}', fs.compute(bars), kind='features', version=fs.version, params=fs.params)
    return fs, bars


class Receiver:
    "A real HTTP server on 127.0.0.1 that records every POST (path, headers, JSON body) and answers `status`."

    def __init__(self, status=200, body=b'ok'):
        self.requests, self.status, self.body = [], status, body
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                outer.requests.append(dict(path=self.path, headers=dict(self.headers), json=json.loads(raw)))
                self.send_response(outer.status)
                self.send_header('Content-Type', 'application/json')
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path):
        return f'http://127.0.0.1:{self.port}{path}'

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.server.shutdown()
        self.server.server_close()


from local_servers import free_port  # noqa: F401 (re-exported for the alert tests)
