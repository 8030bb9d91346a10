"""Signal gateway latency and throughput against `mlflow models serve`, the same model, in the same run.

Prepares a small model (sim bars of 4 instruments, a short training run), then starts both servers on 127.0.0.1:
- ours: `autotrader serve` (one process), measured on `GET /v1/signal/{instrument}` and on `POST /v1/predict`;
- peer: `mlflow models serve -m models:/autotrader/1 --env-manager local` (its uvicorn), on `POST /invocations` with
  the same feature row.
For each endpoint: closed-loop clients (1, 4, 8, 16 at once; each sends its next request when the last one is
answered) for `--seconds` each → throughput, p50, p99; and an open-loop run at `--rate` requests/s (requests sent on a
fixed schedule whatever the answers) → p50, p99 and failures. `--runs` repetitions; medians are printed, with the
ratio of our throughput to mlflow's at 8 clients. The load generator (aiohttp) runs on the same machine.

    python benchmarks/gateway.py                 # 3 runs, about 4 minutes
    python benchmarks/gateway.py --runs 1 --seconds 3
"""

from __future__ import annotations
import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def prepare(d: Path) -> dict:
    from autotrader.config import load_settings
    from autotrader.pipelines.ingest import ingest
    from autotrader.pipelines.train import train
    from autotrader.train.registry import ModelRegistry

    (d / 'settings.ini').write_text(
        textwrap.dedent("""\
        [instruments]
        symbols = BTC-USD, ETH-USD, SOL-USD, ADA-USD
        [data]
        end = 2025-01-01
        lookback_days = 150
        [train]
        cv_folds = 3
        n_trials = 3
        """)
    )
    st = load_settings(d / 'settings.ini', env={})
    ingest(settings=st, progress=False)
    res = train(st)
    reg = ModelRegistry.from_settings(st)
    reg.promote(res.version)
    row = res.data.X.iloc[[-1]]
    return dict(
        settings=str(d / 'settings.ini'),
        version=res.version,
        uri=reg.uri,
        features=list(row.columns),
        row={k: float(v) for k, v in row.iloc[0].items()},
    )


def wait(url, proc, log, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {Path(log).read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    sys.exit(f"server not ready: {url}")


def start(cmd, cwd, env, log):
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=open(log, 'wb'), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def closed_loop(req, clients: int, seconds: float) -> dict:
    import aiohttp

    lat, fails = [], 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as s:
        end = time.perf_counter() + seconds

        async def worker():
            nonlocal fails
            while time.perf_counter() < end:
                t = time.perf_counter()
                ok = await req(s)
                lat.append(time.perf_counter() - t)
                fails += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(clients)])
        span = time.perf_counter() - t0
    return summary(lat, fails, span)


async def open_loop(req, rate: float, seconds: float) -> dict:
    import aiohttp

    lat, fails, tasks = [], 0, []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as s:
        t0 = time.perf_counter()
        n = int(rate * seconds)

        async def one(due):
            nonlocal fails
            ok = await req(s)
            lat.append(time.perf_counter() - due)
            fails += not ok

        for i in range(n):
            due = t0 + i / rate
            d = due - time.perf_counter()
            if d > 0:
                await asyncio.sleep(d)
            tasks.append(asyncio.ensure_future(one(due)))
        await asyncio.gather(*tasks)
        span = time.perf_counter() - t0
    return summary(lat, fails, span)


def summary(lat, fails, span) -> dict:
    lat = sorted(lat)
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3 if lat else float('nan')
    return dict(requests=len(lat), failed=fails, rps=len(lat) / span, p50_ms=q(0.5), p99_ms=q(0.99))


def requests_for(ours: str, peer: str, info: dict) -> dict:
    body_ours = json.dumps({'features': info['row'], 'instrument': 'BTC-USD'}).encode()
    body_peer = json.dumps(
        {'dataframe_split': {'columns': info['features'], 'data': [[info['row'][f] for f in info['features']]]}}
    ).encode()
    h = {'Content-Type': 'application/json'}

    async def signal(s):
        async with s.get(f'{ours}/v1/signal/BTC-USD') as r:
            await r.read()
            return r.status == 200

    async def predict(s):
        async with s.post(f'{ours}/v1/predict', data=body_ours, headers=h) as r:
            await r.read()
            return r.status == 200

    async def mlflow_(s):
        async with s.post(f'{peer}/invocations', data=body_peer, headers=h) as r:
            await r.read()
            return r.status == 200

    return {'ours GET /v1/signal': signal, 'ours POST /v1/predict': predict, 'mlflow POST /invocations': mlflow_}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--seconds', type=float, default=5.0, help='seconds per measurement')
    ap.add_argument('--clients', default='1,4,8,16')
    ap.add_argument('--rate', type=float, default=200.0, help='open-loop request rate')
    ap.add_argument('--tmpdir', default=None)
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix='autotrader-gw-bench-', dir=a.tmpdir))
    env = {
        **os.environ,
        'MLFLOW_DISABLE_TELEMETRY': 'true',
        'NO_PROXY': '127.0.0.1,localhost',
        'OMP_NUM_THREADS': '1',
        'PATH': os.pathsep.join([str(Path(sys.executable).parent), os.environ.get('PATH', '')]),
    }
    env = {k: v for k, v in env.items() if not k.startswith('AUTOTRADER__')}
    procs = []
    try:
        print('preparing a model (ingest + a short training run)…', flush=True)
        t = time.time()
        info = prepare(d)
        print(f'  v{info["version"]} in {time.time() - t:.0f} s')
        po, pm = free_port(), free_port()
        ours, peer = f'http://127.0.0.1:{po}', f'http://127.0.0.1:{pm}'
        procs.append(
            start(
                [sys.executable, '-m', 'autotrader.cli', 'serve', '--port', str(po), '--settings', info['settings']],
                d,
                env,
                d / 'ours.log',
            )
        )
        procs.append(
            start(
                [
                    sys.executable,
                    '-m',
                    'mlflow',
                    'models',
                    'serve',
                    '-m',
                    f"models:/autotrader/{info['version']}",
                    '--port',
                    str(pm),
                    '--host',
                    '127.0.0.1',
                    '--env-manager',
                    'local',
                    '--workers',
                    '1',
                ],
                d,
                {**env, 'MLFLOW_TRACKING_URI': info['uri']},
                d / 'mlflow.log',
            )
        )
        wait(f'{ours}/readyz', procs[0], d / 'ours.log')
        wait(f'{peer}/ping', procs[1], d / 'mlflow.log')
        reqs = requests_for(ours, peer, info)
        for name, r in reqs.items():  # warm both
            asyncio.run(closed_loop(r, 2, 1.0))
        clients = [int(c) for c in a.clients.split(',')]
        res = {}
        for run in range(a.runs):
            for name, r in reqs.items():
                for c in clients:
                    res.setdefault((name, f'{c} clients'), []).append(asyncio.run(closed_loop(r, c, a.seconds)))
                res.setdefault((name, f'{a.rate:g} req/s open loop'), []).append(
                    asyncio.run(open_loop(r, a.rate, a.seconds))
                )
            print(f'run {run + 1}/{a.runs} done', flush=True)
        med = lambda xs, k: statistics.median(x[k] for x in xs)
        print(f"\n{'endpoint':28} {'load':22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
        for (name, load), xs in res.items():
            print(
                f"{name:28} {load:22} {med(xs, 'rps'):8.0f} {med(xs, 'p50_ms'):8.2f} {med(xs, 'p99_ms'):8.2f} {int(sum(x['failed'] for x in xs)):7d}"
            )
        k8 = '8 clients'
        for name in ('ours GET /v1/signal', 'ours POST /v1/predict'):
            if (name, k8) in res:
                ratio = med(res[(name, k8)], 'rps') / med(res[('mlflow POST /invocations', k8)], 'rps')
                print(f"throughput at 8 clients, {name} / mlflow: {ratio:.1f}x")
        ol = res[('ours GET /v1/signal', f'{a.rate:g} req/s open loop')]
        print(f"GET /v1/signal at {a.rate:g} req/s: p99 {med(ol, 'p99_ms'):.2f} ms (target < 10 ms)")
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == '__main__':
    main()
