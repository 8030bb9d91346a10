"Recovery as commands: `autotrader archive verify` and `autotrader store rebuild` (the disaster-recovery drill), local and on a moto S3 server."

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from autotrader.cli import main
from autotrader.config import load_settings
from autotrader.data.archive import LocalArchive, RawPayload, S3Archive
from autotrader.pipelines.ingest import ingest
from autotrader.ops.recovery import rebuild_store, store_content_hash, verify_archive
from autotrader.features.store import FeatureStore


def settings_file(d: Path, **extra) -> Path:
    "A settings.ini for a small synthetic market in `d` (two calendars, 1h bars)."
    lines = [
        '[data]',
        'dir = data',
        'timeframe = 1h',
        '',
        '[instruments]',
        'symbols = BTC-USD, EUR-USD:fx, SPY:equity_us',
        '',
    ]
    for section, kv in extra.items():
        lines += [f'[{section}]'] + [f'{k} = {v}' for k, v in kv.items()] + ['']
    p = d / 'settings.ini'
    p.write_text('\n'.join(lines))
    return p


def damage(path: Path, how: str):
    b = path.read_bytes()
    if how == 'truncate':
        path.write_bytes(b[: len(b) // 2])
    else:
        path.write_bytes(b[: len(b) // 2] + bytes([b[len(b) // 2] ^ 0x5A]) + b[len(b) // 2 + 1 :])


# ---------------------------------------------------------------- archive verify, local


def test_verify_local_lists_corrupt_and_truncated_and_exits_1(tmp_path, capsys):
    ini = settings_file(tmp_path)
    st = load_settings(ini, env={})
    ingest(start='2024-01-01', end='2024-01-04', settings=st, progress=False)
    assert main(['archive', 'verify', '--settings', str(ini)]) == 0
    out = capsys.readouterr().out
    keys = LocalArchive(st.archive.dir).list()
    assert f'{len(keys)} objects' in out and 'all intact' in out and len(keys) >= 6
    bad_t, bad_c = keys[1], keys[-2]
    damage(st.archive.dir / bad_t, 'truncate')
    damage(st.archive.dir / bad_c, 'flip')
    assert main(['archive', 'verify', '--settings', str(ini)]) == 1
    out = capsys.readouterr().out
    assert '2 BAD' in out and f'TRUNCATED  {bad_t}' in out and f'CORRUPT    {bad_c}' in out
    rep = verify_archive(st)
    assert rep.checked == len(keys) and {p['key']: p['problem'] for p in rep.problems} == {
        bad_t: 'truncated',
        bad_c: 'corrupt',
    }
    # restricted to one instrument: only its objects are read
    one = verify_archive(st, source='sim', instrument='SPY')
    assert one.checked == len([k for k in keys if k.split('/')[1] == 'SPY'])


def test_verify_removes_only_stale_temporary_files(tmp_path, capsys):
    ini = settings_file(tmp_path)
    st = load_settings(ini, env={})
    ingest(start='2024-01-01', end='2024-01-02', settings=st, progress=False)
    folder = st.archive.dir / 'sim' / 'BTC-USD' / '2024-01-01'
    stale, fresh = folder / '.abc.csv.gz.x1.tmp', folder / '.abc.csv.gz.x2.tmp'
    stale.write_bytes(b'half a write')
    fresh.write_bytes(b'a write in progress')
    os.utime(stale, (time.time() - 3 * 3600,) * 2)
    assert main(['archive', 'verify', '--keep-tmp', '--tmp-grace-hours', '2', '--settings', str(ini)]) == 0
    assert stale.exists() and 'removed 1 stale temporary file' in capsys.readouterr().out  # --keep-tmp: listed only
    assert main(['archive', 'verify', '--tmp-grace-hours', '2', '--settings', str(ini)]) == 0
    out = capsys.readouterr().out
    assert not stale.exists() and fresh.exists(), 'the stale file goes, the recent one stays'
    assert 'sim/BTC-USD/2024-01-01/.abc.csv.gz.x1.tmp' in out and 'kept 1 recent temporary file' in out


def test_verify_bad_input(tmp_path, capsys):
    ini = settings_file(tmp_path)
    assert main(['archive', 'verify', '--settings', str(ini)]) == 1  # no archive yet
    assert 'no archive folder' in capsys.readouterr().err
    assert main(['archive', 'verify', '--tmp-grace-hours', 'soon', '--settings', str(ini)]) == 2
    assert main(['archive', 'check']) == 2


# ---------------------------------------------------------------- archive verify, S3 (moto server)


@pytest.fixture
def bucket(moto_s3):
    import boto3

    s3 = boto3.client('s3', endpoint_url=moto_s3, region_name='us-east-1')
    name = f'dr-{uuid.uuid4().hex[:12]}'
    s3.create_bucket(Bucket=name)
    return s3, name


def test_verify_s3_lists_corrupt_and_truncated(tmp_path, moto_s3, bucket, capsys):
    s3, name = bucket
    ini = settings_file(tmp_path, archive=dict(backend='s3', bucket=name, endpoint_url=moto_s3, prefix='raw'))
    st = load_settings(ini)
    ingest(start='2024-01-01', end='2024-01-03', settings=st, progress=False)
    keys = S3Archive(name, 'raw', moto_s3).list()
    assert len(keys) >= 4 and main(['archive', 'verify', '--settings', str(ini)]) == 0
    capsys.readouterr()
    # overwrite two objects in place, keeping the metadata the archive wrote: a cut-off body and a flipped byte
    for key, how in ((keys[0], 'truncate'), (keys[-1], 'flip')):
        obj = s3.get_object(Bucket=name, Key=f'raw/{key}')
        b = obj['Body'].read()
        b = b[: len(b) // 2] if how == 'truncate' else b[:20] + bytes([b[20] ^ 0x5A]) + b[21:]
        s3.put_object(Bucket=name, Key=f'raw/{key}', Body=b, Metadata=obj['Metadata'])
    assert main(['archive', 'verify', '--settings', str(ini)]) == 1
    out = capsys.readouterr().out
    assert f's3://{name}/raw' in out and '2 BAD' in out
    assert f'TRUNCATED  {keys[0]}' in out and f'CORRUPT    {keys[-1]}' in out


def test_verify_s3_missing_bucket_is_a_clear_error(tmp_path, moto_s3, capsys):
    ini = settings_file(tmp_path, archive=dict(backend='s3', bucket='no-such-bucket-dr', endpoint_url=moto_s3))
    assert main(['archive', 'verify', '--settings', str(ini)]) == 1
    assert "'no-such-bucket-dr' does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------- the disaster-recovery drill


def test_dr_drill_store_rebuilt_from_the_archive_alone(tmp_path, capsys):
    "Ingest (two incremental runs), delete the store and its catalog, `autotrader store rebuild`: the same content."
    ini = settings_file(tmp_path)
    st = load_settings(ini, env={})
    ingest(start='2024-01-01', end='2024-01-08', settings=st, progress=False)
    ingest(end='2024-01-15', settings=st, progress=False)  # incremental, from the watermarks
    store = FeatureStore(st.store.dir)
    before, datasets = store_content_hash(st.store.dir), store.datasets()
    assert 'bars' in datasets and any(d.startswith('features/') for d in datasets)
    shutil.rmtree(st.store.dir)  # the disaster: store and catalog gone
    assert not st.store.dir.exists()

    assert main(['store', 'rebuild', '--settings', str(ini)]) == 0
    out = capsys.readouterr().out
    assert f'content hash {before}' in out
    assert store_content_hash(st.store.dir) == before
    assert FeatureStore(st.store.dir).datasets() == datasets and FeatureStore(st.store.dir).verify() == []

    # the rebuilt store carries on: the next incremental run equals the one on a store that was never lost
    shutil.copytree(st.store.dir, tmp_path / 'copy')
    ingest(end='2024-01-20', settings=st, progress=False)
    after = store_content_hash(st.store.dir)
    assert after != before
    ref = tmp_path / 'ref'
    ref_st = load_settings(settings_file(ref.mkdir() or ref), env={})
    ingest(start='2024-01-01', end='2024-01-08', settings=ref_st, progress=False)
    ingest(end='2024-01-15', settings=ref_st, progress=False)
    ingest(end='2024-01-20', settings=ref_st, progress=False)
    assert store_content_hash(ref_st.store.dir) == after


def test_rebuild_refuses_to_overwrite_and_force_moves_the_old_store_aside(tmp_path, capsys):
    ini = settings_file(tmp_path)
    st = load_settings(ini, env={})
    ingest(start='2024-01-01', end='2024-01-03', settings=st, progress=False)
    before = store_content_hash(st.store.dir)
    assert main(['store', 'rebuild', '--settings', str(ini)]) == 2
    assert '--force' in capsys.readouterr().err
    assert main(['store', 'rebuild', '--force', '--settings', str(ini)]) == 0
    aside = [p for p in st.store.dir.parent.iterdir() if p.name.startswith('store.replaced-')]
    assert len(aside) == 1 and store_content_hash(aside[0]) == before == store_content_hash(st.store.dir)
    assert not [p for p in st.store.dir.parent.iterdir() if '.rebuild-' in p.name], 'no half-built store left'


def test_rebuild_timeframes_and_empty_archive(tmp_path, capsys):
    ini = settings_file(tmp_path)
    st = load_settings(ini, env={})
    assert main(['store', 'rebuild', '--settings', str(ini)]) == 1
    assert 'holds no objects' in capsys.readouterr().err
    ingest(start='2024-01-01', end='2024-01-03', settings=st, progress=False)
    ingest(start='2024-01-01', end='2024-01-03', timeframe='15m', settings=st, progress=False)
    h = store_content_hash(st.store.dir)
    shutil.rmtree(st.store.dir)
    r1 = rebuild_store(st, timeframe='1h')
    r2 = rebuild_store(st, timeframe='15m', force=True)
    assert r1.skipped_other_timeframe == r2.payloads and r2.skipped_other_timeframe == r1.payloads
    assert r1.bars * 4 == r2.bars or r1.bars < r2.bars
    assert main(['store', 'rebuild', '--timeframe', '4h', '--force', '--settings', str(ini)]) == 1
    assert 'no payload of timeframe 4h' in capsys.readouterr().err
    assert main(['store', 'rebuild', '--timeframe', '7m', '--settings', str(ini)]) == 2
    assert "unknown timeframe '7m'" in capsys.readouterr().err


def test_dr_drill_with_an_s3_archive(tmp_path, moto_s3, bucket):
    s3, name = bucket
    ini = settings_file(tmp_path, archive=dict(backend='s3', bucket=name, endpoint_url=moto_s3))
    st = load_settings(ini)
    ingest(start='2024-01-01', end='2024-01-05', settings=st, progress=False)
    before = store_content_hash(st.store.dir)
    shutil.rmtree(st.store.dir)
    assert main(['store', 'rebuild', '--settings', str(ini)]) == 0
    assert store_content_hash(st.store.dir) == before


def test_a_bar_archived_twice_the_later_payload_wins(tmp_path):
    "Two payloads hold the same bar with different values: the rebuild keeps the one archived later, as the upsert did."
    from datetime import date

    st = load_settings(settings_file(tmp_path), env={})
    a = LocalArchive(st.archive.dir)
    t0 = 1704067200000  # 2024-01-01 00:00 UTC
    rows = [(t0 + h * 3600_000, 100 + h, 101 + h, 99 + h, 100.5 + h, 10) for h in range(24)]
    csv = lambda rs: ('ts_ms,open,high,low,close,volume\n' + ''.join(','.join(map(str, r)) + '\n' for r in rs)).encode()
    day = a.put(RawPayload('sim', 'BTC-USD', date(2024, 1, 1), csv(rows), 'csv')).key
    fix = a.put(RawPayload('sim', 'BTC-USD', date(2024, 1, 1), csv([rows[-1][:4] + (124.0, 10)]), 'csv')).key

    def rebuilt_close(older, newer):
        now = time.time()
        os.utime(st.archive.dir / older, (now - 60, now - 60))
        os.utime(st.archive.dir / newer, (now, now))
        rebuild_store(st, timeframe='1h', force=True)
        b = FeatureStore(st.store.dir).read('bars', 'BTC-USD')
        assert len(b) == 24 and b.timestamp.is_unique
        return float(b.close.iloc[-1])

    assert rebuilt_close(day, fix) == 124.0  # the correction was archived last
    assert rebuilt_close(fix, day) == 123.5  # the full day was archived last
