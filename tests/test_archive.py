"Raw archive: local folder and a real moto S3 server on 127.0.0.1."

import datetime
import gzip
import hashlib
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from autotrader.config import load_settings
from autotrader.data.archive import ArchiveError, LocalArchive, RawPayload, S3Archive, archive_key, make_archive

DAY = datetime.date(2024, 1, 5)
CSV = b'timestamp,open,high,low,close,volume\n2024-01-05T00:00:00Z,42000,42100,41900,42050,12.5\n'


def payload(data=CSV, instrument='BTC-USD', source='sim', ext='csv', date=DAY):
    return RawPayload(source, instrument, date, data, ext, {'page': 1})


def sha(b):
    return hashlib.sha256(b).hexdigest()


def run_py(code):
    "Run `code` in a fresh interpreter that imports this repo's autotrader."
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [root, os.environ.get('PYTHONPATH')]))}
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60, env=env)


def files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file())


# ---------------------------------------------------------------- keys


def test_key_format_and_sanitising():
    assert archive_key(payload()) == f'sim/BTC-USD/2024-01-05/{sha(CSV)}.csv.gz'
    assert archive_key(payload(instrument='BTC/USDT', ext='.json')).startswith('sim/BTC_USDT/2024-01-05/')
    for bad in ('..', '.', '', '  '):
        with pytest.raises(ArchiveError, match='instrument'):
            archive_key(payload(instrument=bad))
    with pytest.raises(ArchiveError, match='source'):
        archive_key(payload(source='..'))
    with pytest.raises(ArchiveError, match='extension'):
        archive_key(payload(ext='../x'))


# ---------------------------------------------------------------- local


def test_local_put_get_roundtrip(tmp_path):
    a = LocalArchive(tmp_path / 'archive')
    r = a.put(payload())
    assert (r.key, r.sha256, r.new) == (f'sim/BTC-USD/2024-01-05/{sha(CSV)}.csv.gz', sha(CSV), True)
    assert r.size == (tmp_path / 'archive' / r.key).stat().st_size
    assert a.get(r.key) == CSV and a.exists(r.key)
    assert a.list() == [r.key]


def test_local_put_again_writes_nothing(tmp_path):
    a = LocalArchive(tmp_path)
    r = a.put(payload())
    before = files(tmp_path)
    mtime = (tmp_path / r.key).stat().st_mtime_ns
    r2 = a.put(payload())
    assert (r2.key, r2.new, r2.size) == (r.key, False, r.size)
    assert files(tmp_path) == before and (tmp_path / r.key).stat().st_mtime_ns == mtime


def test_local_different_bytes_different_key_and_filters(tmp_path):
    a = LocalArchive(tmp_path)
    r1, r2 = a.put(payload()), a.put(payload(CSV + b'2024-01-05T01:00:00Z,1,1,1,1,1\n'))
    r3 = a.put(payload(b'{"x": 1}', instrument='ETH/USDT', source='binance', ext='json'))
    assert len({r1.key, r2.key, r3.key}) == 3 and all(r.new for r in (r1, r2, r3))
    assert a.list() == sorted([r1.key, r2.key, r3.key])
    assert a.list(source='sim') == sorted([r1.key, r2.key])
    assert a.list(instrument='ETH/USDT') == [r3.key] == a.list('binance', 'ETH/USDT')
    assert a.list(source='file') == [] and LocalArchive(tmp_path / 'nothing').list() == []


def test_local_object_is_deterministic_gzip(tmp_path):
    a, b = LocalArchive(tmp_path / 'a'), LocalArchive(tmp_path / 'b')
    r = a.put(payload())
    b.put(payload())
    blob = (tmp_path / 'a' / r.key).read_bytes()
    assert blob == (tmp_path / 'b' / r.key).read_bytes()
    assert blob[:2] == b'\x1f\x8b' and blob[3] & 0x08 == 0 and blob[4:8] == b'\0\0\0\0'  # no file name, mtime 0
    assert sha(gzip.decompress(blob)) == r.key.rsplit('/', 1)[1].split('.')[0] == r.sha256


def test_local_corrupt_object(tmp_path):
    a = LocalArchive(tmp_path)
    r = a.put(payload())
    (tmp_path / r.key).write_bytes(gzip.compress(b'tampered'))
    with pytest.raises(ArchiveError, match=f'{r.key}.*corrupt'):
        a.get(r.key)
    (tmp_path / r.key).write_bytes(b'truncated')
    with pytest.raises(ArchiveError, match=f'{r.key}.*not valid gzip'):
        a.get(r.key)
    r2 = a.put(payload())  # a corrupt object is rewritten, and says so
    assert r2.new and a.get(r.key) == CSV


def test_local_missing_and_bad_keys(tmp_path):
    a = LocalArchive(tmp_path)
    key = archive_key(payload())
    with pytest.raises(ArchiveError, match=f'no archive object {key} in {tmp_path}'):
        a.get(key)
    assert not a.exists(key)
    with pytest.raises(ArchiveError, match='not an archive key'):
        a.get('../../etc/passwd')
    with pytest.raises(ArchiveError, match='not an archive key'):
        a.exists('sim/../2024-01-05/' + key.rsplit('/', 1)[1])


def test_local_partial_write_is_invisible(tmp_path):
    "A temporary file left by a crash mid-write is never listed nor read as the final key."
    a = LocalArchive(tmp_path)
    key = archive_key(payload())
    final = tmp_path / key
    final.parent.mkdir(parents=True)
    (final.parent / f'.{final.name}.abc123.tmp').write_bytes(gzip.compress(CSV)[:10])
    assert a.list() == [] and not a.exists(key)
    r = a.put(payload())
    assert r.new and a.list() == [key] and a.get(key) == CSV


def test_local_crash_before_rename_leaves_no_object(tmp_path):
    "A process killed after writing its temp file (before the rename) leaves nothing under the final key."
    code = textwrap.dedent(f'''
        import datetime, os
        from autotrader.data.archive import LocalArchive, RawPayload
        os.fsync = lambda fd: os._exit(9)          # die right after the bytes hit the temp file
        LocalArchive({str(tmp_path)!r}).put(RawPayload('sim', 'BTC-USD', datetime.date(2024, 1, 5), {CSV!r}, 'csv'))
    ''')
    p = run_py(code)
    assert p.returncode == 9, p.stderr
    a = LocalArchive(tmp_path)
    key = archive_key(payload())
    left = files(tmp_path)
    assert len(left) == 1 and left[0].endswith('.tmp')  # the crash's debris, under a temp name only
    assert a.list() == [] and not a.exists(key)
    assert a.put(payload()).new and a.get(key) == CSV


def test_make_archive_local_needs_no_boto3(tmp_path):
    code = textwrap.dedent(f'''
        import datetime, sys
        from autotrader.config import load_settings
        from autotrader.data.archive import make_archive, RawPayload
        a = make_archive(load_settings(overrides={{'data.dir': {str(tmp_path)!r}, 'archive.compresslevel': '9'}}, env={{}}))
        assert type(a).__name__ == 'LocalArchive' and a.root.name == 'archive' and a.compresslevel == 9, a
        a.put(RawPayload('sim', 'X', datetime.date(2024, 1, 5), b'x', 'csv')); a.list()
        assert 'boto3' not in sys.modules and 'botocore' not in sys.modules
    ''')
    p = run_py(code)
    assert p.returncode == 0, p.stderr
    assert len(LocalArchive(tmp_path / 'archive').list()) == 1


# ---------------------------------------------------------------- S3 (moto server)


@pytest.fixture
def s3(moto_s3):
    import boto3

    return boto3.client('s3', endpoint_url=moto_s3, region_name='us-east-1')


@pytest.fixture
def bucket(s3):
    name = f'archive-{uuid.uuid4().hex[:12]}'
    s3.create_bucket(Bucket=name)
    return name


def count(s3, bucket):
    return s3.list_objects_v2(Bucket=bucket).get('KeyCount', 0)


def test_s3_put_get_roundtrip(moto_s3, s3, bucket):
    a = S3Archive(bucket, endpoint_url=moto_s3)
    assert a._client is None  # lazy
    r = a.put(payload())
    assert (r.key, r.sha256, r.new) == (f'sim/BTC-USD/2024-01-05/{sha(CSV)}.csv.gz', sha(CSV), True)
    h = s3.head_object(Bucket=bucket, Key=f'raw/{r.key}')
    assert h['ContentLength'] == r.size and h['Metadata'] == {'sha256': r.sha256}
    assert a.get(r.key) == CSV and a.exists(r.key) and not a.exists(archive_key(payload(b'other')))
    assert a.list() == [r.key]


def test_s3_put_again_writes_nothing(moto_s3, s3, bucket):
    a = S3Archive(bucket, endpoint_url=moto_s3)
    r = a.put(payload())
    n, etag = count(s3, bucket), s3.head_object(Bucket=bucket, Key=f'raw/{r.key}')['ETag']
    r2 = S3Archive(bucket, endpoint_url=moto_s3).put(payload())
    assert (r2.key, r2.new, r2.size) == (r.key, False, r.size)
    assert count(s3, bucket) == n == 1
    assert s3.head_object(Bucket=bucket, Key=f'raw/{r.key}')['ETag'] == etag


def test_s3_different_bytes_and_filters(moto_s3, s3, bucket):
    a = S3Archive(bucket, prefix='', endpoint_url=moto_s3)
    r1, r2 = a.put(payload()), a.put(payload(CSV + b'x'))
    r3 = a.put(payload(b'{}', instrument='ETH/USDT', source='binance', ext='json'))
    s3.put_object(Bucket=bucket, Key='README.txt', Body=b'not an archive object')
    assert len({r1.key, r2.key, r3.key}) == 3 and count(s3, bucket) == 4
    assert a.list() == sorted([r1.key, r2.key, r3.key])
    assert a.list(source='sim') == sorted([r1.key, r2.key])
    assert a.list(instrument='ETH/USDT') == [r3.key] == a.list('binance', 'ETH/USDT')
    assert a.list(source='file') == []


def test_s3_object_is_valid_gzip(moto_s3, s3, bucket):
    r = S3Archive(bucket, prefix='raw/v1/', endpoint_url=moto_s3).put(payload())
    blob = s3.get_object(Bucket=bucket, Key=f'raw/v1/{r.key}')['Body'].read()
    assert blob[:2] == b'\x1f\x8b' and blob[4:8] == b'\0\0\0\0' and len(blob) == r.size
    assert sha(gzip.decompress(blob)) == r.key.rsplit('/', 1)[1].split('.')[0]
    assert blob == gzip.compress(CSV, 6, mtime=0)  # same object as a local archive stores


def test_s3_corrupt_object(moto_s3, s3, bucket):
    a = S3Archive(bucket, endpoint_url=moto_s3)
    r = a.put(payload())
    s3.put_object(Bucket=bucket, Key=f'raw/{r.key}', Body=gzip.compress(b'tampered'))  # no sha256 metadata
    with pytest.raises(ArchiveError, match=f'{r.key}.*corrupt'):
        a.get(r.key)
    r2 = a.put(payload())  # metadata does not match: re-uploaded and verified
    assert r2.new and a.get(r.key) == CSV
    with pytest.raises(ArchiveError, match=f'no archive object {archive_key(payload(b"zz"))}'):
        a.get(archive_key(payload(b'zz')))


def test_s3_missing_bucket(moto_s3):
    a = S3Archive('no-such-bucket-xyz', endpoint_url=moto_s3)
    for op in (
        lambda: a.put(payload()),
        lambda: a.get(archive_key(payload())),
        a.list,
        lambda: a.exists(archive_key(payload())),
    ):
        with pytest.raises(ArchiveError, match=f"'no-such-bucket-xyz'.*{moto_s3}"):
            op()


def test_s3_unreachable_endpoint_is_named():
    import boto3
    from botocore.config import Config

    url = f'http://127.0.0.1:{free_port()}'  # nothing listens there
    c = boto3.client(
        's3',
        endpoint_url=url,
        region_name='us-east-1',
        aws_access_key_id='x',
        aws_secret_access_key='y',
        config=Config(retries={'max_attempts': 1}, connect_timeout=1),
    )
    with pytest.raises(ArchiveError, match=f'some-bucket.*{url}'):
        S3Archive('some-bucket', endpoint_url=url, client=c).put(payload())


def test_make_archive_s3_from_settings(moto_s3, bucket):
    st = load_settings(
        overrides={
            'archive.backend': 's3',
            'archive.bucket': bucket,
            'archive.endpoint_url': moto_s3,
            'archive.prefix': 'landing',
        },
        env={},
    )
    a = make_archive(st)
    assert isinstance(a, S3Archive) and (a.bucket, a.prefix, a.endpoint_url, a._client) == (
        bucket,
        'landing',
        moto_s3,
        None,
    )
    r = a.put(payload())
    assert r.new and a.get(r.key) == CSV and make_archive(st).list() == [r.key]
    assert make_archive(st).put(payload()).new is False


from local_servers import free_port
