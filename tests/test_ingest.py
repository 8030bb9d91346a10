"""The ingest job end to end, on real parts: idempotent re-runs, incremental = full, crash safety under SIGKILL
during the store write, the S3 archive on a moto server, and the `autotrader run ingest` CLI with papermill."""

import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autotrader.config import load_settings
from autotrader.data.archive import make_archive
from autotrader.data.connectors import sim_bars
from autotrader.features.basic import make_feature_set
from autotrader.features.store import FeatureStore
from autotrader.pipelines.ingest import IngestError, ingest
from inprocess import autotrader_cli

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures('hermetic')


def settings(ini, data_dir, **over):
    "Embedded defaults + `over` ({'section__key': value}), data under `data_dir`; no environment."
    return load_settings(
        ini, overrides={'data.dir': str(data_dir), **{k.replace('__', '.'): v for k, v in over.items()}}, env={}
    )


def tree(root: Path) -> dict:
    "Every file under `root` → sha256 of its bytes."
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob('*'))
        if p.is_file()
    }


def read_all(store: FeatureStore) -> dict:
    "Every dataset of the store, read back."
    return {d: store.read(d) for d in store.datasets()}


def assert_same_datasets(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


def content(cat: dict) -> dict:
    "What a catalog says is in the store (partition files, rows, hashes; watermarks), without times and run ids."
    return {
        'datasets': {
            n: {k: (p['file'], p['rows'], p['sha256']) for k, p in d['partitions'].items()}
            for n, d in cat['datasets'].items()
        },
        'watermarks': cat['watermarks'],
    }


# ---------------------------------------------------------------- 2. idempotency


def test_reingest_same_range_is_idempotent(tmp_path, empty_settings):
    st = settings(empty_settings, tmp_path / 'data')
    kw = dict(source='sim', instruments='BTC-USD, EUR-USD:fx', start='2024-01-04', end='2024-01-08', progress=False)
    r1 = ingest(settings=st, **kw)
    assert r1.committed and r1.validation.rows_in > 100 and r1.archived and all(a.new for a in r1.archived)
    store_dir, archive = st.store.dir, make_archive(st)
    store_before, arch_before, arch_files = tree(store_dir), archive.list(), tree(st.archive.dir)
    catalog = (store_dir / 'catalog.json').read_bytes()
    data_before = read_all(r1.store)

    r2 = ingest(settings=settings(empty_settings, tmp_path / 'data'), backfill=True, **kw)
    # it really fetched, archived and validated everything again ...
    assert (
        r2.summary.fetched.tolist() == r1.summary.fetched.tolist() and r2.summary.fetched.sum() == r1.validation.rows_in
    )
    assert [a.key for a in r2.archived] == [a.key for a in r1.archived] and not any(a.new for a in r2.archived)
    assert r2.metrics()['archive_new'] == 0 and r2.metrics()['archive_existing'] == len(r1.archived)
    # ... and changed nothing
    assert r2.committed is False
    assert (store_dir / 'catalog.json').read_bytes() == catalog
    assert tree(store_dir) == store_before
    assert archive.list() == arch_before and tree(st.archive.dir) == arch_files
    assert_same_datasets(read_all(FeatureStore(store_dir)), data_before)

    # without backfill the watermarks say there is nothing to do
    r3 = ingest(settings=settings(empty_settings, tmp_path / 'data'), **kw)
    assert set(r3.summary.status) == {'up to date'} and r3.archived == [] and r3.committed is False
    assert tree(store_dir) == store_before


# ---------------------------------------------------------------- 3. incremental = full


def test_incremental_equals_full(tmp_path, empty_settings):
    ins = 'BTC-USD, EUR-USD:fx'  # fx: the range crosses a weekend (no bars on Saturday)
    d0, d2, d4 = '2024-01-03', '2024-01-06', '2024-01-10'
    inc = settings(empty_settings, tmp_path / 'inc')
    a = ingest(source='sim', instruments=ins, start=d0, end=d2, settings=inc, progress=False)
    b = ingest(
        source='sim', instruments=ins, end=d4, settings=settings(empty_settings, tmp_path / 'inc'), progress=False
    )
    assert a.committed and b.committed
    # the watermark, not a start, drove the 2nd run: it begins one bar after the 1st run's last bar
    assert b.summary.start.tolist() == (a.summary.watermark + pd.Timedelta(hours=1)).tolist()
    assert b.summary.start.max() == pd.Timestamp(d2, tz='UTC') and b.summary.fetched.min() > 0  # BTC-USD: d2 itself
    full = ingest(
        source='sim',
        instruments=ins,
        start=d0,
        end=d4,
        settings=settings(empty_settings, tmp_path / 'full'),
        progress=False,
    )
    si, sf = FeatureStore(inc.store.dir), full.store
    assert a.validation.rows_in + b.validation.rows_in == full.validation.rows_in
    feats = f'features/{full.feature_set}'
    assert 'bars' in sf.datasets() and feats in sf.datasets()
    got, want = read_all(si), read_all(sf)
    assert_same_datasets(got, want)
    # the long windows really reach back into the first run's bars: vol_cc_96 is defined after the boundary
    f = want[feats]
    assert f.loc[f.timestamp >= pd.Timestamp(d2, tz='UTC'), 'vol_cc_96'].notna().any()
    assert si._catalog()['watermarks'] == sf._catalog()['watermarks']
    assert content(si._catalog()) == content(sf._catalog())


# ---------------------------------------------------------------- 4. crash during the store write

CRASH_SYMS = [f'S{i:02d}' for i in range(6)]
PRIOR_END, CRASH_END = '2024-01-22', '2024-01-24'

CHILD = r'''
import json, sys
import great_expectations, autotrader.ops.runner  # noqa: imported before GO (ingest imports the runner before its clock starts)
from autotrader.config import load_settings
from autotrader.pipelines.ingest import IngestError, ingest
print('READY', flush=True)
data_dir = sys.stdin.readline().strip()
st = load_settings(sys.argv[1], overrides={'data.dir': data_dir, 'data.timeframe': '1m'}, env={})
print('GO', flush=True)
r = ingest(source='sim', instruments=sys.argv[2], end=sys.argv[3], settings=st, run_id='crash', progress=False)
print(json.dumps(dict(r.timings, committed=r.committed)), flush=True)
'''


def _crash_prior(d: Path, ini) -> Path:
    """A store holding 21 days of 1m bars + features of 6 instruments (about 30 000 rows per monthly partition), written
    with the store's own transaction API (much faster than ingesting them), watermarks set as an ingest would."""
    st = settings(ini, d, data__timeframe='1m')
    fs, store = make_feature_set(st), FeatureStore(st.store.dir)
    with store.transaction('prior') as tx:
        for s in CRASH_SYMS:
            b = sim_bars(s, 'crypto', '1m', '2024-01-01', PRIOR_END)
            tx.write('bars', b, kind='bars', version='1')
            tx.write(f'features/{fs.id}', fs.compute(b), kind='features', version=fs.version, params=fs.params)
            tx.set_watermark('sim', s, '1m', b.timestamp.max())
    return d


class _Child:
    "`ingest` in a fresh interpreter: started (imports) ahead of time, run on `go(data_dir)`, then killed or awaited."

    def __init__(self, ini):
        env = {k: v for k, v in os.environ.items() if not k.startswith('AUTOTRADER')}
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), env.get('PYTHONPATH')]))
        self.err = tempfile.TemporaryFile('w+')  # a file, not a pipe: a full pipe would stall the child
        self.p = subprocess.Popen(
            [sys.executable, '-c', CHILD, str(ini), ','.join(CRASH_SYMS), CRASH_END],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
        )

    def _stderr(self):
        self.err.seek(0)
        return self.err.read()[-3000:]

    def _expect(self, word):
        line = self.p.stdout.readline()
        if line.strip() != word:
            self.p.kill()
            self.p.wait()
            raise AssertionError(f'child said {line!r}, expected {word}: {self._stderr()}')

    def go(self, data_dir):
        self._expect('READY')
        self.p.stdin.write(f'{data_dir}\n')
        self.p.stdin.flush()
        self._expect('GO')

    def wait(self, timeout=120):
        out, _ = self.p.communicate(timeout=timeout)
        return self.p.returncode, out, self._stderr()


def _referenced(root: Path) -> set:
    "Partition files named by catalog.json or by a kept snapshot."
    out = set()
    for f in [root / 'catalog.json', *sorted((root / 'snapshots').glob('*.json'))]:
        out |= {p['file'] for d in json.loads(f.read_text())['datasets'].values() for p in d['partitions'].values()}
    return out


def _leftovers(root: Path) -> tuple[list, list]:
    "(parquet files catalog.json does not reference, temporary files) under a store."
    cat = {
        p['file']
        for d in json.loads((root / 'catalog.json').read_text())['datasets'].values()
        for p in d['partitions'].values()
    }
    orphans = sorted(
        p.relative_to(root).as_posix()
        for p in (root / 'data').rglob('*.parquet')
        if p.relative_to(root).as_posix() not in cat
    )
    tmps = sorted(p.relative_to(root).as_posix() for p in root.rglob('*.tmp'))
    return orphans, tmps


def _new_files(root: Path, prior: set) -> bool:
    "Has the run written a partition file (or begun one) that the prior store did not have?"
    return any(p.relative_to(root).as_posix() not in prior for p in (root / 'data').rglob('*') if p.is_file())


def _kill_at(child: _Child, root: Path, point: tuple, prior_files: set):
    """SIGKILL the running child at `point`: ('time', s) s after GO; ('archive', s) s after its first raw object reached
    the archive (fetched, not yet validated); ('write', s) s after its first new partition file appeared (anchored on
    this run's own store write, so the point lands inside it whatever the machine's speed); ('commit', 0) as soon as
    catalog.json is replaced."""
    kind, s = point
    if kind == 'archive':
        while child.p.poll() is None and not any((root.parent / 'archive').rglob('*.gz')):
            time.sleep(0.002)
    elif kind == 'write':
        while child.p.poll() is None and not _new_files(root, prior_files):
            time.sleep(0.002)
    elif kind == 'commit':
        st0 = (root / 'catalog.json').stat()
        while child.p.poll() is None and (root / 'catalog.json').stat().st_ino == st0.st_ino:
            time.sleep(0.001)
    time.sleep(s)
    child.p.send_signal(signal.SIGKILL)


def test_sigkill_during_ingest_leaves_the_store_consistent(tmp_path, empty_settings):
    prior = _crash_prior(tmp_path / 'prior', empty_settings)
    store_rel = Path('store')
    old_catalog = (prior / store_rel / 'catalog.json').read_bytes()
    prior_files = {
        p.relative_to(prior / store_rel).as_posix() for p in (prior / store_rel / 'data').rglob('*') if p.is_file()
    }

    child = _Child(empty_settings)  # the first child imports while the reference run goes
    # the uninterrupted run (in this process: same code, same data): the reference result, and how long it takes
    ref_dir = tmp_path / 'ref'
    shutil.copytree(prior, ref_dir)
    ref = ingest(
        source='sim',
        instruments=','.join(CRASH_SYMS),
        end=CRASH_END,
        settings=settings(empty_settings, ref_dir, data__timeframe='1m'),
        run_id='crash',
        progress=False,
    )
    assert ref.committed and ref.validation.rows_in > 0.9 * len(CRASH_SYMS) * 2 * 1440
    timings = ref.timings
    ref_store = FeatureStore(ref_dir / store_rel)
    ref_cat = json.loads(ref_store.catalog_path.read_text())
    ref_data, ref_archive = read_all(ref_store), make_archive(settings(empty_settings, ref_dir)).list()
    pre, write = timings['total'] - timings['store'], timings['store']
    print(f"\nuninterrupted ingest: {timings['total']:.2f} s, of which store write {write:.2f} s")
    assert write > 0.2, f'the store write ({write:.2f} s) is too short to be hit'

    # kill points: two before the store write, three across it, one right at the commit
    points = [('archive', 0), ('time', 0.6 * pre)] + [('write', f * write) for f in (0.0, 0.15, 0.35)] + [('commit', 0)]
    outcomes = []
    for i, point in enumerate(points):
        d = tmp_path / f'kill{i}'
        shutil.copytree(prior, d)
        root = d / store_rel
        child.go(d)
        _kill_at(child, root, point, prior_files)
        rc, _, err = child.wait(60)
        assert rc in (0, -signal.SIGKILL), err
        child = _Child(empty_settings) if i + 1 < len(points) else None  # imports while we check this one

        # after the kill: consistent, and the catalog is the old one or the complete new one, never a mix
        store = FeatureStore(root)
        assert store.verify() == []
        cat_bytes = store.catalog_path.read_bytes()
        if cat_bytes == old_catalog:
            state = 'old'
        else:
            cat = json.loads(cat_bytes)
            assert content(cat) == content(ref_cat), 'catalog is neither the old nor the complete new one'
            assert cat['version'] == ref_cat['version']
            state = 'new'
        for name in store.datasets():
            store.read(name)  # every dataset reads
        orphans, tmps = _leftovers(root)
        outcomes.append(
            dict(
                point=point[0],
                after=round(point[1], 2),
                exit=rc,
                catalog=state,
                orphans=len(orphans),
                tmp=len(tmps),
                mid_write=state == 'old' and bool(orphans or tmps),
            )
        )

        # a normal re-run completes the work, and the store equals the uninterrupted run's
        st = settings(empty_settings, d, data__timeframe='1m')
        r = ingest(
            source='sim', instruments=','.join(CRASH_SYMS), end=CRASH_END, settings=st, run_id='crash', progress=False
        )
        assert r.committed == (state == 'old')
        assert content(json.loads(store.catalog_path.read_text())) == content(ref_cat)
        assert store.verify() == []
        assert_same_datasets(read_all(store), ref_data)
        archive = make_archive(st)
        assert archive.list() == ref_archive
        for key in archive.list():
            archive.get(key)  # every archived object is whole (sha256-verified)
        assert not list(root.rglob('*.tmp'))
        assert {p.relative_to(root).as_posix() for p in (root / 'data').rglob('*.parquet')} <= _referenced(root)
        shutil.rmtree(d)

    print('\n'.join(map(str, outcomes)))
    assert any(o['mid_write'] for o in outcomes), f'no kill landed during the store write: {outcomes}'
    first, last = outcomes[0], outcomes[-1]
    assert (first['catalog'], first['orphans'], first['tmp']) == ('old', 0, 0), outcomes  # killed before the write
    assert last['catalog'] == 'new', outcomes  # killed at the commit


# ---------------------------------------------------------------- 5. S3 archive


def _objects(client, bucket):
    return {
        o['Key']: (o['ETag'], o['LastModified'], o['Size'])
        for pg in client.get_paginator('list_objects_v2').paginate(Bucket=bucket)
        for o in pg.get('Contents', [])
    }


def test_s3_archive_end_to_end(tmp_path, empty_settings, moto_s3):
    import boto3

    bucket = f'raw-{uuid.uuid4().hex[:12]}'
    client = boto3.client('s3', endpoint_url=moto_s3, region_name='us-east-1')
    client.create_bucket(Bucket=bucket)
    over = dict(archive__backend='s3', archive__bucket=bucket, archive__endpoint_url=moto_s3)
    kw = dict(source='sim', instruments='BTC-USD,ETH-USD', start='2024-01-01', end='2024-01-03', progress=False)
    r1 = ingest(settings=settings(empty_settings, tmp_path / 'data', **over), **kw)
    assert r1.committed and len(r1.archived) == 4 and all(a.new for a in r1.archived)
    objs = _objects(client, bucket)
    assert len(objs) == 4
    pat = re.compile(r'raw/sim/(BTC-USD|ETH-USD)/(2024-01-0[12])/([0-9a-f]{64})\.csv\.gz')
    seen = set()
    for key in objs:
        m = pat.fullmatch(key)
        assert m, key
        seen.add(m.group(1, 2))
        body = gzip.decompress(client.get_object(Bucket=bucket, Key=key)['Body'].read())
        assert hashlib.sha256(body).hexdigest() == m.group(3)
        assert body.startswith(b'ts_ms,open,high,low,close,volume')
    assert seen == {(s, d) for s in ('BTC-USD', 'ETH-USD') for d in ('2024-01-01', '2024-01-02')}
    assert not (tmp_path / 'data' / 'archive').exists()  # nothing went to the local archive
    assert sorted(make_archive(settings(empty_settings, tmp_path / 'data', **over)).list()) == sorted(
        k[4:] for k in objs
    )

    time.sleep(1.1)  # LastModified has 1 s resolution: a re-upload would now show
    r2 = ingest(settings=settings(empty_settings, tmp_path / 'data', **over), backfill=True, **kw)
    assert r2.summary.fetched.sum() == r1.summary.fetched.sum()
    assert not any(a.new for a in r2.archived) and [a.key for a in r2.archived] == [a.key for a in r1.archived]
    assert _objects(client, bucket) == objs
    assert r2.committed is False


# ---------------------------------------------------------------- 6. CLI


def _cli(cwd, *params):
    "`autotrader run ingest -p …` in `cwd` (in process: the notebook still runs in its own kernel)."
    args = ['run', 'ingest']
    for p in params:
        args += ['-p', p]
    return autotrader_cli(*args, cwd=cwd)


@pytest.fixture(scope='module')
def cli_ok(tmp_path_factory):
    "A successful `autotrader run ingest` in an empty folder."
    cwd = tmp_path_factory.mktemp('cli')
    p = _cli(cwd, 'start=2024-01-01', 'end=2024-01-03', 'instruments=BTC-USD,ETH-USD')
    return cwd, p


def _run_dirs(cwd):
    return sorted(p for p in (cwd / 'reports' / 'ingest').iterdir() if p.is_dir())


@pytest.mark.e2e
def test_cli_ingest_ok(cli_ok):
    cwd, p = cli_ok
    assert p.returncode == 0, p.stdout + p.stderr
    assert 'status:  ok' in p.stdout
    (run,) = _run_dirs(cwd)
    rec = json.loads((run / 'run.json').read_text())
    assert rec['status'] == 'ok' and rec['error'] is None and rec['run_id'] == run.name
    assert rec['parameters'] == {'start': '2024-01-01', 'end': '2024-01-03', 'instruments': 'BTC-USD,ETH-USD'}
    m = rec['metrics']
    assert m['rows_in'] == 96 and m['rows_clean'] + m['rows_quarantined'] == 96 and m['committed'] is True
    assert m['instruments'] == 2 and m['archive_new'] == 4
    page = (run / 'report.html').read_text()
    # the summary table: one row per instrument, with its columns
    assert '<table' in page
    for s in ('BTC-USD', 'ETH-USD', 'completeness', 'largest gap (bars)', 'feature rows', 'watermark', 'ingested'):
        assert s in page, s
    assert run.name in page  # the run id line above the table
    store = FeatureStore(cwd / 'autotrader-data' / 'store')
    cat = json.loads(store.catalog_path.read_text())
    assert 'bars' in cat['datasets'] and any(d.startswith('features/standard@') for d in cat['datasets'])
    assert cat['datasets']['bars']['rows'] == m['rows_clean'] and cat['run_id'] == run.name
    assert set(store.read('bars').instrument) == {'BTC-USD', 'ETH-USD'}
    assert (cwd / 'reports' / 'index.html').exists()


@pytest.mark.e2e
def test_cli_ingest_failure(cli_ok):
    cwd, ok = cli_ok
    assert ok.returncode == 0
    store = cwd / 'autotrader-data' / 'store'
    before, catalog = tree(store), (store / 'catalog.json').read_bytes()
    empty = cwd / 'empty.csv'
    empty.write_bytes(b'')
    p = _cli(cwd, 'source=file', f'path={empty}')
    assert p.returncode == 1, p.stdout + p.stderr
    assert 'status:  failed' in p.stdout and 'empty file' in p.stdout
    run = [r for r in _run_dirs(cwd) if json.loads((r / 'run.json').read_text())['status'] == 'failed']
    assert len(run) == 1
    rec = json.loads((run[0] / 'run.json').read_text())
    assert 'IngestError' in rec['error'] and 'empty file' in rec['error'] and str(empty) in rec['error']
    page = (run[0] / 'report.html').read_text()
    assert 'IngestError' in page and 'empty file (0 bytes of data)' in page
    # nothing stored; the raw (empty) file archived all the same
    assert (store / 'catalog.json').read_bytes() == catalog and tree(store) == before
    st = load_settings(overrides={'data.dir': str(cwd / 'autotrader-data')}, env={})
    assert any(k.endswith(f'{hashlib.sha256(b"").hexdigest()}.csv.gz') for k in make_archive(st).list(source='file'))


# ---------------------------------------------------------------- 7. files: names, every row accounted for


def _fx_hourly_csv(path: Path, rows=5000, layout='plain'):
    "A realistic EUR/USD hourly file: `rows` bars of the FX week (no weekend bars), 5 decimals, tick volumes."
    b = sim_bars('EURUSD', 'fx', '1h', '2023-01-02', '2024-06-01', outage_rate=0).head(rows)
    assert len(b) == rows
    df = pd.DataFrame(
        {
            'Date': b.timestamp.dt.strftime('%Y-%m-%d %H:%M:%S'),
            'Open': b.open.round(5),
            'High': b.high.round(5),
            'Low': b.low.round(5),
            'Close': b.close.round(5),
            'Volume': (b.volume * 10).round().astype(int),
        }
    )
    if layout == 'symbols':
        df.insert(0, 'Symbol', 'EURUSD')
    text = df.to_csv(index=False).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text) if path.name.endswith('.gz') else text)
    return df


@pytest.mark.e2e
@pytest.mark.parametrize('path', ['EURUSD.csv', 'data/eurusd_h1.csv.gz'])
def test_readme_file_example_stores_every_row(tmp_path, path):
    "The README's file-ingest example, run as written on a real hourly file: every row stored under the requested name."
    df = _fx_hourly_csv(tmp_path / path)
    p = _cli(tmp_path, 'source=file', f'path={path}', 'instruments=EUR-USD:fx', 'timeframe=1h')
    assert p.returncode == 0, p.stdout + p.stderr
    assert 'status:  ok' in p.stdout and 'warning:' not in p.stdout, p.stdout
    (run,) = _run_dirs(tmp_path)
    m = json.loads((run / 'run.json').read_text())['metrics']
    assert (m['rows_received'], m['rows_clean'], m['rows_quarantined'], m['rows_left_out'], m['warnings']) == (
        5000,
        5000,
        0,
        0,
        [],
    )
    got = FeatureStore(tmp_path / 'autotrader-data' / 'store').read('bars')
    assert set(got.instrument) == {'EUR-USD'} and len(got) == 5000
    assert got.close.tolist() == df.Close.tolist()
    assert got.timestamp.tolist() == pd.to_datetime(df.Date, utc=True).tolist()


def test_file_rows_of_other_instruments_warn_or_fail(tmp_path):
    "Some rows match: stored, the rest counted and shown (CLI, report, run.json). None matches: exit 1 naming both."
    a = _fx_hourly_csv(tmp_path / 'a.csv', rows=300, layout='symbols')
    b = a.assign(Symbol='GBPUSD', Close=a.Close * 1.15, Open=a.Open * 1.15, High=a.High * 1.15, Low=a.Low * 1.15)
    pd.concat([a, b]).to_csv(tmp_path / 'fx.csv', index=False)
    p = _cli(tmp_path, 'source=file', 'path=fx.csv', 'instruments=EURUSD:fx')
    assert p.returncode == 0, p.stdout + p.stderr
    want = 'warning: 300 row(s) of instruments not requested left out: GBPUSD (300); requested: EURUSD'
    assert want in p.stdout, p.stdout
    (run,) = _run_dirs(tmp_path)
    rec = json.loads((run / 'run.json').read_text())
    m = rec['metrics']
    assert (m['rows_received'], m['rows_clean'], m['left_out']) == (600, 300, {'not_requested': 300})
    assert any(w.startswith('300 row(s) of instruments not requested') for w in m['warnings'])
    assert '300 row(s) of instruments not requested left out' in (run / 'report.html').read_text()
    before = tree(tmp_path / 'autotrader-data' / 'store')
    p = _cli(tmp_path, 'source=file', 'path=fx.csv', 'instruments=EUR-USD:fx,USDJPY:fx')
    assert p.returncode == 1, p.stdout + p.stderr
    assert (
        'no row belongs to a requested instrument: found EURUSD (300 rows), GBPUSD (300 rows); requested EUR-USD, USDJPY'
        in p.stdout
    )
    assert tree(tmp_path / 'autotrader-data' / 'store') == before


def test_run_that_stores_nothing_fails(tmp_path, empty_settings):
    "Rows came, none stored: an IngestError with the breakdown, nothing written. All already stored: ok, up to date."
    _fx_hourly_csv(tmp_path / 'EURUSD.csv', rows=500)
    st = settings(empty_settings, tmp_path / 'data', data__source='file', file__path=str(tmp_path / 'EURUSD.csv'))
    with pytest.raises(
        IngestError, match=r'file: received 500 row\(s\) and stored none \(500 left out: outside_range\)'
    ):
        ingest(instruments='EUR-USD:fx', start='2025-01-01', settings=st, progress=False)
    assert not (tmp_path / 'data' / 'store' / 'catalog.json').exists()
    r = ingest(instruments='EUR-USD:fx', start='2023-01-10', settings=st, progress=False)
    assert (
        r.left_out == {'outside_range': int(r.received - len(r.validation.clean))} and r.left_out['outside_range'] > 0
    )
    assert r.received == 500 == len(r.validation.clean) + len(r.validation.quarantine) + r.left_out['outside_range']
    again = ingest(instruments='EUR-USD:fx', settings=st, progress=False)  # a re-run of the whole file: not a failure
    assert not again.committed and again.left_out == {'before_watermark': 500} and again.received == 500
    assert any('500 row(s) at or before the watermark' in w for w in again.warnings), again.warnings


# ---------------------------------------------------------------- 8. exchange calendars


def _daily_file(path: Path, days) -> pd.DataFrame:
    "A daily stock file in Yahoo's layout (Date, OHLC, Adj Close, Volume)."
    n = len(days)
    rng = np.random.default_rng(7)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    df = pd.DataFrame(
        {
            'Date': pd.DatetimeIndex(days).strftime('%Y-%m-%d'),
            'Open': open_.round(4),
            'High': (np.maximum(open_, close) * 1.01).round(4),
            'Low': (np.minimum(open_, close) * 0.99).round(4),
            'Close': close.round(4),
            'Adj Close': close.round(4),
            'Volume': rng.integers(10**6, 5 * 10**7, n),
        }
    )
    df.to_csv(path, index=False)
    return df


@pytest.mark.parametrize('calendar', ['XNYS', 'equity_us'])
def test_ten_years_of_daily_bars_on_exchange_sessions_are_complete(tmp_path, empty_settings, calendar):
    "GOOG daily, 2014–2023, exactly on the NYSE's sessions (holidays absent, half-days present): 100 % complete."
    from autotrader.schema import expected_bars

    days = expected_bars('XNYS', '1d', '2014-01-01', '2024-01-01')
    assert (
        len(days) == 2516
        and pd.Timestamp('2020-12-25', tz='UTC') not in days
        and pd.Timestamp('2020-11-27', tz='UTC') in days
    )
    _daily_file(tmp_path / 'GOOG.csv', days)
    st = settings(empty_settings, tmp_path / 'data', data__source='file', file__path=str(tmp_path / 'GOOG.csv'))
    r = ingest(
        instruments=f'GOOG:{calendar}',
        timeframe='1d',
        start='2014-01-01',
        end='2024-01-01',
        settings=st,
        progress=False,
    )
    c = r.validation.completeness.iloc[0]
    assert (c.expected, c.present, c.completeness) == (2516, 2516, 1.0)
    assert len(r.validation.flags) == 0 and r.warnings == [] and len(r.validation.clean) == 2516
    # a weekday holiday in the file is off the calendar (flagged), a missing session is a gap
    extra = days.delete(100).append(pd.DatetimeIndex(['2019-12-25'], tz='UTC')).sort_values()
    _daily_file(tmp_path / 'GOOG2.csv', extra)
    st = settings(empty_settings, tmp_path / 'data2', data__source='file', file__path=str(tmp_path / 'GOOG2.csv'))
    r = ingest(
        instruments=f'GOOG:{calendar}',
        timeframe='1d',
        start='2014-01-01',
        end='2024-01-01',
        settings=st,
        progress=False,
    )
    c = r.validation.completeness.iloc[0]
    assert (c.missing, c.largest_gap_start) == (1, days[100])
    assert r.validation.flags.timestamp.tolist() == [pd.Timestamp('2019-12-25', tz='UTC')]


def test_ib_hourly_bars_and_an_early_close_are_on_the_calendar(tmp_path, empty_settings):
    """IB's hourly stock bars (09:30, 10:00, 11:00, … 15:00 New York; 09:30 … 12:00 on the 13:00 close after
    Thanksgiving), in New York time with offsets, for a month: on the calendar and 100 % complete."""
    from autotrader.schema import expected_bars

    ts = expected_bars('XNYS', '1h', '2024-11-01', '2024-12-01', align='clock')
    ny = ts.tz_convert('America/New_York')
    assert list(ny[ny.day == 29].strftime('%H:%M')) == ['09:30', '10:00', '11:00', '12:00']
    assert list(ny[ny.day == 27].strftime('%H:%M')) == ['09:30', '10:00', '11:00', '12:00', '13:00', '14:00', '15:00']
    assert 28 not in set(ny.day)  # Thanksgiving
    px = 100 + np.cumsum(np.random.default_rng(3).normal(0, 0.2, len(ts)))
    pd.DataFrame(
        {
            'date': ny.strftime('%Y-%m-%d %H:%M:%S%z'),
            'open': px,
            'high': px + 0.3,
            'low': px - 0.3,
            'close': px + 0.1,
            'volume': 1000,
        }
    ).to_csv(tmp_path / 'SPY.csv', index=False)
    st = settings(empty_settings, tmp_path / 'data', data__source='file', file__path=str(tmp_path / 'SPY.csv'))
    r = ingest(instruments='SPY:equity_us', start='2024-11-01', end='2024-12-01', settings=st, progress=False)
    c = r.validation.completeness.iloc[0]
    assert (c.expected, c.present, c.completeness) == (len(ts), len(ts), 1.0)
    assert len(r.validation.flags) == 0 and len(r.validation.clean) == len(ts) and r.warnings == []


def test_file_archived_under_its_name_so_a_rebuild_names_it_alike(tmp_path, empty_settings):
    "A file stored under the requested name is archived under that name: `store rebuild` from the archive agrees."
    from autotrader.ops.recovery import rebuild_store

    _fx_hourly_csv(tmp_path / 'eurusd_h1.csv.gz', rows=400)
    st = settings(empty_settings, tmp_path / 'data', data__source='file', file__path=str(tmp_path / 'eurusd_h1.csv.gz'))
    r = ingest(instruments='EUR-USD:fx', settings=st, progress=False)
    assert [a.key.split('/')[1] for a in r.archived] == ['EUR-USD']
    want = r.store.read('bars')
    rebuilt = settings(empty_settings, tmp_path / 'data', store__dir=str(tmp_path / 'rebuilt'))
    rebuild_store(rebuilt, timeframe='1h')
    got = FeatureStore(tmp_path / 'rebuilt').read('bars')
    assert set(got.instrument) == {'EUR-USD'} and len(got) == len(want) == 400
    pd.testing.assert_frame_equal(got[['timestamp', 'close']], want[['timestamp', 'close']])
