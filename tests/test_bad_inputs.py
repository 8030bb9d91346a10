"""Bad-input corpus (tests/data/bad, see its README.md): every broken file is ingested with `source=file` into a
store that already holds a good ingest of another instrument. Either the run stops with an `IngestError` that names
the problem and the store is byte-identical afterwards, or the bad bars are quarantined with the expected reason and
no row is lost (rows in = clean + quarantined = data rows counted independently in the file). The raw file is in
the archive in every case, also when it could not be parsed."""

import csv
import gzip
import hashlib
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from autotrader.config import load_settings
from autotrader.data.archive import make_archive
from autotrader.features.store import FeatureStore
from autotrader.pipelines.ingest import IngestError, ingest, quarantine_reasons

CORPUS = Path(__file__).resolve().parent / 'data' / 'bad'
pytestmark = pytest.mark.usefixtures('hermetic')


@dataclass
class Case:
    file: str
    error: list = None  # substrings the IngestError message must contain
    names_file: bool = True  # the message names the file
    quarantined: dict = field(
        default_factory=dict
    )  # data row index in the file → reason that must be among its reasons
    warning: str = None  # a substring of one of validation.warnings
    delimiter: str = 'auto'


CASES = [
    Case('missing_column.csv', error=['missing column(s) volume', 'volume=<file column>']),
    Case(
        'non_numeric_prices.csv', quarantined={5: 'non_numeric_close', 17: 'non_numeric_close', 30: 'non_numeric_close'}
    ),
    Case(
        'nonpositive_prices.csv', quarantined={8: 'nonpositive_close', 20: 'nonpositive_close', 33: 'nonpositive_low'}
    ),
    Case('high_below_low.csv', quarantined={6: 'high_below_low', 21: 'high_below_low', 40: 'high_below_low'}),
    Case(
        'duplicate_timestamps.csv',
        quarantined={11: 'duplicate_timestamp', 27: 'duplicate_timestamp', 34: 'duplicate_timestamp'},
    ),
    Case('out_of_order.csv', warning='out of order'),
    Case('mixed_timezones.csv', error=['mixed time zones', 'offset']),
    Case('empty.csv', error=['empty file']),
    Case('header_only.csv', error=['no rows', 'only a header']),
    Case('truncated.csv.gz', error=['truncated or corrupt gzip']),
    Case('huge_gap.csv', warning='largest gap 504 bars'),
    Case('semicolon.csv', delimiter=',', error=['wrong delimiter', 'missing column(s) timestamp']),
    Case('semicolon.csv'),  # the same file, delimiter sniffed: fine
    Case(
        'unparseable_timestamps.csv',
        quarantined={3: 'unparseable_timestamp', 19: 'unparseable_timestamp', 36: 'unparseable_timestamp'},
    ),
    Case('unparseable_timestamps_utc.csv', quarantined={7: 'unparseable_timestamp', 29: 'unparseable_timestamp'}),
    Case('negative_volume.csv', quarantined={12: 'negative_volume', 44: 'negative_volume'}),
    Case('stale_run.csv', quarantined={i: 'stale_price' for i in range(41, 75)}),
    Case('bad_tick.csv', quarantined={30: 'return_spike'}),
    Case(
        'mostly_bad.csv',
        error=['75% of 48 bars quarantined', 'max_quarantine_share', 'nonpositive_close', 'Nothing was stored'],
        names_file=False,
    ),
]


def _id(c):
    return c.file + ('[delimiter=,]' if c.delimiter != 'auto' else '')


def tree(root: Path) -> dict:
    "Every file under `root` → sha256 of its bytes."
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob('*'))
        if p.is_file()
    }


def file_rows(raw: bytes) -> list[list[str]] | None:
    "The data rows of a CSV file, read with the csv module (delimiter guessed from the header); None if unreadable."
    if raw[:2] == b'\x1f\x8b':
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error):
            return None
    lines = [l for l in raw.decode().splitlines() if l.strip()]
    if not lines:
        return []
    sep = ';' if lines[0].count(';') > lines[0].count(',') else ','
    return list(csv.reader(lines[1:], delimiter=sep))


def utc(s: str):
    t = pd.to_datetime(s, errors='coerce')
    return pd.NaT if pd.isna(t) else (t.tz_localize('UTC') if t.tzinfo is None else t.tz_convert('UTC'))


@pytest.fixture(scope='module')
def prior(tmp_path_factory, empty_settings):
    "A data folder (archive + store) holding a good sim ingest of BTC-USD."
    d = tmp_path_factory.mktemp('prior')
    st = load_settings(empty_settings, overrides={'data.dir': str(d)}, env={})
    r = ingest(source='sim', instruments='BTC-USD', start='2024-03-01', end='2024-03-03', settings=st, progress=False)
    assert r.committed and r.validation.rows_in == 48
    return d


@pytest.mark.parametrize('case', CASES, ids=_id)
def test_bad_input(case, prior, tmp_path, empty_settings):
    data, path = tmp_path / 'data', CORPUS / case.file
    shutil.copytree(prior, data)
    st = load_settings(
        empty_settings,
        env={},
        overrides={
            'data.dir': str(data),
            'data.source': 'file',
            'file.path': str(path),
            'file.delimiter': case.delimiter,
        },
    )
    store = FeatureStore(st.store.dir)
    before, catalog = tree(st.store.dir), store.catalog_path.read_bytes()
    prior_bars = store.read('bars')
    raw = path.read_bytes()
    rows = file_rows(raw)
    instrument = path.name.split('.')[0]

    if case.error:
        with pytest.raises(IngestError) as e:
            ingest(settings=st, progress=False)
        msg = str(e.value)
        for s in case.error:
            assert s in msg, msg
        if case.names_file:
            assert str(path) in msg, msg
        # nothing was stored: the store is byte-identical, file by file
        assert store.catalog_path.read_bytes() == catalog
        assert tree(st.store.dir) == before
    else:
        res = ingest(settings=st, progress=False)
        v = res.validation
        n = len(rows)
        assert n > 0
        # no row silently dropped
        assert v.rows_in == len(v.clean) + len(v.quarantine) == n
        assert res.metrics()['rows_in'] == n and res.outside_range == 0
        assert res.summary.set_index('instrument').loc[instrument, 'fetched'] == n
        got = pd.concat([v.clean.timestamp, v.quarantine.timestamp], ignore_index=True)
        want = pd.Series([utc(r[0]) for r in rows], dtype='datetime64[ns, UTC]')
        assert sorted(got.dropna()) == sorted(want.dropna()) and got.isna().sum() == want.isna().sum()
        # the bad rows, and only they, are quarantined, each with the expected reason
        q = v.quarantine
        assert len(q) == len(case.quarantined)
        assert sorted(map(str, q.timestamp)) == sorted(str(utc(rows[i][0])) for i in case.quarantined)
        table = quarantine_reasons(res).set_index('reason').bars
        for reason, count in pd.Series(case.quarantined).value_counts().items():
            assert q.reason.str.split(';').apply(lambda r: reason in r).sum() == count, q.reason.tolist()
            assert table[reason] == count
        if case.warning:
            assert any(case.warning in w for w in v.warnings), v.warnings
        # what the store holds now: the prior instrument untouched, the new one's clean bars and its quarantine
        assert store.verify() == []
        pd.testing.assert_frame_equal(store.read('bars', 'BTC-USD'), prior_bars)
        assert len(store.read('bars', instrument)) == len(v.clean)
        if len(q):
            sq = store.read('quarantine', instrument)
            assert len(sq) == len(q) and sorted(sq.reason) == sorted(q.reason)
        else:
            assert 'quarantine' not in store.datasets()
        assert res.committed
    # the raw file is archived, byte for byte, whatever happened
    archive = make_archive(st)
    sha = hashlib.sha256(raw).hexdigest()
    keys = [k for k in archive.list(source='file') if k.rsplit('/', 1)[1].startswith(sha)]
    assert len(keys) == 1, archive.list(source='file')
    assert archive.get(keys[0]) == raw


# ---------------------------------------------------------------- specifics of some files


def _run(prior, tmp_path, empty_settings, name, **over):
    data = tmp_path / 'data'
    shutil.copytree(prior, data)
    st = load_settings(
        empty_settings,
        env={},
        overrides={'data.dir': str(data), 'data.source': 'file', 'file.path': str(CORPUS / name), **over},
    )
    return ingest(settings=st, progress=False)


def test_out_of_order_bars_are_stored_in_time_order(prior, tmp_path, empty_settings):
    res = _run(prior, tmp_path, empty_settings, 'out_of_order.csv')
    stored = res.store.read('bars', 'out_of_order')
    rows = sorted(file_rows((CORPUS / 'out_of_order.csv').read_bytes()), key=lambda r: r[0])
    assert stored.timestamp.is_monotonic_increasing and len(stored) == len(rows) == 48
    assert stored.close.round(4).tolist() == [float(r[4]) for r in rows]
    assert '6 bar(s) arrived out of order' in ' '.join(res.validation.warnings)


def test_huge_gap_is_reported_as_incomplete(prior, tmp_path, empty_settings):
    res = _run(prior, tmp_path, empty_settings, 'huge_gap.csv')
    c = res.summary.set_index('instrument').loc['huge_gap']
    assert c.clean == 96 and c.quarantined == 0
    assert c.largest_gap_bars == 3 * 7 * 24 and c.completeness == pytest.approx(96 / 600)
    w = ' '.join(res.validation.warnings)
    assert 'huge_gap: 16.0% complete' in w and '504 of 600 bars missing' in w and 'from 2024-03-06 00:00:00' in w


def test_duplicates_keep_the_first_copy(prior, tmp_path, empty_settings):
    res = _run(prior, tmp_path, empty_settings, 'duplicate_timestamps.csv')
    rows = file_rows((CORPUS / 'duplicate_timestamps.csv').read_bytes())
    clean = res.validation.clean.set_index('timestamp')
    t = utc(rows[34][0])  # file row 34 re-sends file row 33 (bar 31) with another close
    assert rows[34][0] == rows[33][0] and rows[34][4] != rows[33][4]
    assert clean.loc[t, 'close'] == pytest.approx(float(rows[33][4]))
    assert res.validation.quarantine.set_index('timestamp').loc[t, 'close'] == pytest.approx(float(rows[34][4]))


def test_corpus_is_reproducible(tmp_path):
    "make_corpus.py regenerates exactly the committed files."
    import importlib.util

    spec = importlib.util.spec_from_file_location('make_corpus', CORPUS / 'make_corpus.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    files = mod.build(tmp_path)
    assert len(files) >= 12
    for name, data in files.items():
        assert (CORPUS / name).read_bytes() == data, (
            f'{name} differs from what make_corpus.py builds: regenerate the corpus'
        )
    assert (CORPUS / 'README.md').read_text() == (tmp_path / 'README.md').read_text()
    for name in files:
        assert f'`{name}`' in (CORPUS / 'README.md').read_text()
