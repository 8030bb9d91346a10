"""Fast unit tests of the core helpers' edge cases: clocks, atomic writes, the run context, progress lines and the
bar schema (error messages that name what is wrong, boundary values, what a terminal sees and what a log does not)."""

import io
import json
import math
import os
import re
import stat
import time
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autotrader.clock import ManualClock, ReplayClock, WallClock, clock_from_dict, iso
from autotrader.files import _mode, _umask, atomic_write
from autotrader.pipelines.context import RunContext, new_run_id, plain
from autotrader.pipelines.progress import PROGRESS_FILE, progress
from autotrader.schema import (
    BAR_COLUMNS,
    Instrument,
    SchemaError,
    annual_bars,
    bar_dates,
    canonical,
    check_calendar,
    empty_bars,
    exchange_code,
    expected_bars,
    is_open,
    parse_instruments,
    session_opens,
    timeframe_delta,
    to_utc,
)

# ---------------------------------------------------------------- clocks


def test_wall_clock_is_time_and_sleeps_not_for_negative_seconds():
    c = WallClock()
    assert abs(c.now() - time.time()) < 1
    t0 = time.monotonic()
    c.sleep(-5)  # a deadline already past: no wait, no error
    c.sleep(0.01)
    assert time.monotonic() - t0 < 1
    assert c.to_dict() == {'mode': 'wall'} and repr(c) == 'WallClock()' and c.mode == 'wall' and c.speed == 1.0


def test_replay_clock_runs_speed_times_faster_than_the_wall():
    origin = time.time() - 2.0  # started two wall seconds ago
    c = ReplayClock(start=1_000_000.0, speed=3600.0, origin=origin)
    assert 1_000_000 + 2 * 3600 <= c.now() < 1_000_000 + 3 * 3600
    t0 = time.monotonic()
    c.sleep(36.0)  # 36 clock seconds = 10 ms of wall time
    c.sleep(-100)
    assert time.monotonic() - t0 < 0.5
    assert c.to_dict() == {'mode': 'replay', 'start': 1_000_000.0, 'speed': 3600.0, 'origin': origin}
    assert c.mode == 'replay'


@pytest.mark.parametrize('speed', [0, -1.0, float('nan')])
def test_replay_clock_refuses_a_speed_that_is_not_positive(speed):
    with pytest.raises(ValueError, match=r'replay speed must be > 0'):
        ReplayClock(start=0.0, speed=speed)


def test_manual_clock_moves_only_forward():
    c = ManualClock(100.0)
    assert c.now() == 100.0
    assert c.advance(5) == 105.0
    with pytest.raises(ValueError, match=r'does not go back \(-1 s\)'):
        c.advance(-1)
    c.sleep(-3)  # a negative sleep does nothing
    assert c.now() == 105.0
    c.sleep(2.5)
    assert c.now() == 107.5
    assert c.set(50) == 107.5  # set() to the past: the clock stays
    assert c.set(200) == 200.0
    assert c.to_dict() == {'mode': 'manual', 't': 200.0}
    assert c.speed == math.inf and c.mode == 'manual'


def test_clock_from_dict_round_trips_every_clock_and_names_an_unknown_mode():
    assert isinstance(clock_from_dict(None), WallClock)
    assert isinstance(clock_from_dict({}), WallClock)
    assert isinstance(clock_from_dict({'mode': 'wall'}), WallClock)
    m = clock_from_dict(ManualClock(42.0).to_dict())
    assert isinstance(m, ManualClock) and m.now() == 42.0
    r0 = ReplayClock(start=10.0, speed=60.0, origin=123.0)
    r = clock_from_dict(json.loads(json.dumps(r0.to_dict())))
    assert isinstance(r, ReplayClock) and (r.start, r.speed, r.origin) == (10.0, 60.0, 123.0)
    with pytest.raises(ValueError, match=r"unknown clock mode 'fast'"):
        clock_from_dict({'mode': 'fast'})


def test_iso_is_utc_seconds_and_none_for_missing_or_infinite_times():
    assert iso(0) == '1970-01-01T00:00:00+00:00'
    assert iso(1_700_000_000.9) == '2023-11-14T22:13:20+00:00'
    assert iso(None) is None
    assert iso(math.inf) is None and iso(-math.inf) is None and iso(float('nan')) is None


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_creates_folders_writes_text_as_utf8_and_leaves_no_temporary_file(tmp_path):
    p = atomic_write(tmp_path / 'a' / 'b' / 'x.txt', 'café ✓')
    assert p == tmp_path / 'a' / 'b' / 'x.txt'
    assert p.read_bytes() == 'café ✓'.encode('utf-8')
    atomic_write(p, b'\x00\x01', durable=False)
    assert p.read_bytes() == b'\x00\x01'
    assert [q.name for q in p.parent.iterdir()] == ['x.txt']


def test_atomic_write_gives_a_new_file_the_umask_mode_and_keeps_an_existing_files_mode(tmp_path):
    umask = _umask()
    m = os.umask(umask)  # read it the other way too: both must agree
    os.umask(m)
    assert umask == m
    new = atomic_write(tmp_path / 'new.txt', 'x')
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    kept = tmp_path / 'kept.txt'
    kept.write_text('old')
    kept.chmod(0o640)
    assert _mode(kept) == 0o640
    atomic_write(kept, 'new')
    assert kept.read_text() == 'new' and stat.S_IMODE(kept.stat().st_mode) == 0o640


def test_atomic_write_that_fails_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / 'target'
    target.mkdir()  # a folder where the file should go: os.replace fails
    (target / 'inside').write_text('keep')
    with pytest.raises(OSError):
        atomic_write(target, 'data')
    assert (target / 'inside').read_text() == 'keep'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['target']  # the .target.*.tmp file is gone


# ---------------------------------------------------------------- run context


def test_new_run_id_is_sortable_utc_time_plus_random_suffix():
    a, b = new_run_id(), new_run_id()
    assert re.fullmatch(r'\d{8}T\d{6}Z-[0-9a-f]{6}', a)
    assert a != b
    assert a[:8] == datetime.now(timezone.utc).strftime('%Y%m%d') or a[:8] < b[:8]


def test_plain_unwraps_numpy_pandas_dates_and_paths_and_drops_non_finite_numbers():
    out = plain(
        {
            'i': np.int64(3),
            'f': np.float32(0.5),
            'nan': float('nan'),
            'inf': np.float64('inf'),
            'arr': np.array([1.0, np.nan]),
            'when': datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
            'day': date(2026, 1, 2),
            'path': Path('/tmp/x'),
            'tuple': (1, 'a', None, True),
            7: 'int key',
        }
    )
    assert out == {
        'i': 3,
        'f': 0.5,
        'nan': None,
        'inf': None,
        'arr': [1.0, None],
        'when': '2026-01-02T03:04:05+00:00',
        'day': '2026-01-02',
        'path': '/tmp/x',
        'tuple': [1, 'a', None, True],
        '7': 'int key',
    }
    json.dumps(out, allow_nan=False)  # plain JSON


def test_plain_names_the_metric_that_cannot_be_serialised():
    with pytest.raises(TypeError, match=r'^metric\.model\.estimator: a object is not JSON-serialisable$'):
        plain({'model': {'estimator': object()}})
    with pytest.raises(TypeError, match=r'^cv: a set is not JSON-serialisable$'):
        plain({1, 2}, 'cv')


def test_run_context_outside_the_runner_records_nothing_to_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ctx = RunContext.local('train')
    assert ctx.pipeline == 'train' and not ctx.in_runner and isinstance(ctx.clock, WallClock)
    assert ctx.record(sharpe=np.float64(1.5), bad=float('nan')) == {'sharpe': 1.5, 'bad': None}
    assert list(tmp_path.iterdir()) == []


def test_run_context_in_the_runner_merges_metrics_json(tmp_path):
    ctx = RunContext(run_id='r1', run_dir=str(tmp_path), pipeline='ingest', clock=ManualClock(5.0))
    assert ctx.in_runner
    ctx.record(rows_in=10, instruments=['A'])
    merged = ctx.record(rows_in=np.int64(12), rows_clean=11)
    assert merged == {'rows_in': 12, 'instruments': ['A'], 'rows_clean': 11}
    assert json.loads((tmp_path / 'metrics.json').read_text()) == merged
    with pytest.raises(TypeError, match=r'^model: a object'):
        ctx.record(model=object())
    assert json.loads((tmp_path / 'metrics.json').read_text()) == merged  # a failed record leaves the file


def test_run_context_round_trips_through_the_papermill_parameter():
    ctx = RunContext(run_id='r2', run_dir='/runs/r2', pipeline='health', clock=ManualClock(9.0), progress=False)
    d = json.loads(json.dumps(ctx.to_param()))
    back = RunContext.from_param(d)
    assert (back.run_id, back.run_dir, back.pipeline, back.progress) == ('r2', '/runs/r2', 'health', False)
    assert isinstance(back.clock, ManualClock) and back.clock.now() == 9.0
    by_hand = RunContext.from_param(None, 'train')  # a notebook run by hand
    assert by_hand.pipeline == 'train' and not by_hand.in_runner and by_hand.progress
    older = RunContext.from_param({'run_id': 'r3'}, pipeline='ingest')  # keys a runner of an older version left out
    assert (older.pipeline, older.run_dir, older.progress) == ('ingest', None, False)
    assert isinstance(older.clock, WallClock)


# ---------------------------------------------------------------- progress lines


class _Stream(io.StringIO):
    "A stand-in for sys.stderr that says whether it is a terminal."

    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_is_a_no_op_without_a_context_or_when_progress_is_off(tmp_path, monkeypatch):
    err = _Stream(tty=True)
    monkeypatch.setattr('sys.stderr', err)
    progress(None, 'fetch: 1/5')
    progress(RunContext(run_dir=str(tmp_path), progress=False), 'fetch: 1/5')
    assert err.getvalue() == ''
    assert not (tmp_path / PROGRESS_FILE).exists()


def test_progress_in_a_run_folder_appends_one_line_per_call(tmp_path, monkeypatch):
    err = _Stream(tty=True)
    monkeypatch.setattr('sys.stderr', err)
    ctx = RunContext(run_dir=str(tmp_path))
    progress(ctx, 'fetch sim:\n  3/5   instruments')
    progress(ctx, 42)
    assert (tmp_path / PROGRESS_FILE).read_text() == 'fetch sim: 3/5 instruments\n42\n'
    assert err.getvalue() == ''  # the runner's ticker shows it, not the kernel


def test_progress_never_fails_a_run_when_its_file_cannot_be_written(tmp_path):
    not_a_folder = tmp_path / 'file'
    not_a_folder.write_text('')
    progress(RunContext(run_dir=str(not_a_folder)), 'still fine')  # no exception
    assert not_a_folder.read_text() == ''


def test_progress_outside_the_runner_rewrites_one_terminal_line_and_stays_out_of_logs(monkeypatch):
    ctx = RunContext.local('train')
    tty = _Stream(tty=True)
    monkeypatch.setattr('sys.stderr', tty)
    progress(ctx, 'trial 3/50')
    progress(ctx, 'x' * 400)
    out = tty.getvalue()
    assert out.startswith('\rtrial 3/50\x1b[K\r')
    assert out.endswith('\r' + 'x' * 150 + '\x1b[K')  # cut to one line of a terminal
    log = _Stream(tty=False)
    monkeypatch.setattr('sys.stderr', log)
    progress(ctx, 'trial 4/50')
    assert log.getvalue() == ''


# ---------------------------------------------------------------- bar schema


def _bars(**over):
    d = {
        'timestamp': pd.to_datetime(['2024-01-01 00:00', '2024-01-01 01:00'], utc=True),
        'instrument': ['A', 'A'],
        'timeframe': ['1h', '1h'],
        'open': [1, 2],
        'high': ['2', '3'],
        'low': [0.5, 1.5],
        'close': [1.5, 2.5],
        'volume': [10, 20],
        'source': ['t', 't'],
    }
    d.update(over)
    return pd.DataFrame(d)


def test_canonical_coerces_dtypes_and_column_order():
    df = _bars(vwap=[1.2, 2.2])[::-1].reset_index(drop=True)  # optional columns are kept
    out = canonical(df[['vwap'] + BAR_COLUMNS[::-1]])
    assert list(out.columns) == BAR_COLUMNS + ['vwap']
    assert str(out['timestamp'].dtype) == 'datetime64[ns, UTC]'
    assert out['high'].dtype == 'float64' and out['high'].tolist() == [3.0, 2.0]
    e = empty_bars()
    assert list(e.columns) == BAR_COLUMNS and len(e) == 0


def test_canonical_names_the_missing_naive_or_non_numeric_column():
    with pytest.raises(SchemaError, match=r'missing column\(s\): volume, source'):
        canonical(_bars().drop(columns=['volume', 'source']))
    with pytest.raises(SchemaError, match=r"'timestamp' must be time-zone aware \(got datetime64"):
        canonical(_bars(timestamp=pd.to_datetime(['2024-01-01', '2024-01-02'])))
    with pytest.raises(SchemaError, match=r"column 'low' is not numeric"):
        canonical(_bars(low=['0.5', 'n/a']))
    ny = canonical(_bars(timestamp=pd.to_datetime(['2024-01-01 00:00', '2024-01-01 01:00']).tz_localize('US/Eastern')))
    assert ny['timestamp'].iloc[0] == pd.Timestamp('2024-01-01 05:00', tz='UTC')


def test_timeframe_delta_and_to_utc():
    assert timeframe_delta('4h') == pd.Timedelta(hours=4)
    with pytest.raises(ValueError, match=r"unknown timeframe '2h'; known: 1m"):
        timeframe_delta('2h')
    assert to_utc(None) is None and to_utc('  ') is None
    assert to_utc('2024-01-01 12:00') == pd.Timestamp('2024-01-01 12:00', tz='UTC')  # naive = UTC
    assert to_utc('2024-01-01T12:00+02:00') == pd.Timestamp('2024-01-01 10:00', tz='UTC')


def test_check_calendar_spells_exchange_codes_canonically_and_lists_what_is_known():
    assert check_calendar(' fx ') == 'fx'
    assert check_calendar('xlon') == 'XLON'
    assert check_calendar('NYSE') == 'XNYS'
    with pytest.raises(ValueError, match=r"unknown calendar 'mars'; known: crypto, fx, equity_us, always.*in all\)"):
        check_calendar('mars')
    assert exchange_code('equity_us') == 'XNYS' and exchange_code('always') is None and exchange_code('xtks') == 'XTKS'


def test_parse_instruments_from_a_string_or_a_list_with_errors_naming_the_item():
    got = parse_instruments(' BTC-USD , SPY:equity_us,, EUR-USD:fx ', default_calendar='always')
    assert got == [Instrument('BTC-USD', 'always'), Instrument('SPY', 'equity_us'), Instrument('EUR-USD', 'fx')]
    keep = Instrument('X', 'crypto')
    assert parse_instruments([keep, 'VOD:xlon']) == [keep, Instrument('VOD', 'XLON')]
    with pytest.raises(ValueError, match=r"instrument 'ABC:moon': unknown calendar 'moon'"):
        parse_instruments('ABC:moon')
    with pytest.raises(ValueError, match=r"instrument ':fx': empty symbol"):
        parse_instruments([':fx'])


def test_expected_bars_on_fx_and_crypto_and_a_bad_alignment():
    # FX closes Friday 17:00 New York (22:00 UTC in January) and opens again Sunday 17:00 New York
    fx = expected_bars('fx', '1h', '2024-01-05 20:00', '2024-01-07 23:00')
    assert list(fx) == list(pd.to_datetime(['2024-01-05 20:00', '2024-01-05 21:00', '2024-01-07 22:00'], utc=True))
    assert len(expected_bars('crypto', '1d', '2024-01-01 06:00', '2024-01-04')) == 2  # daily bars start at midnight
    assert len(expected_bars('always', '1h', '2024-01-02', '2024-01-01')) == 0  # end before start
    with pytest.raises(ValueError, match=r"align must be 'open', 'clock' or 'any', got 'close'"):
        expected_bars('crypto', '1h', '2024-01-01', '2024-01-02', align='close')
    assert session_opens('crypto', '2024-01-01', '2024-02-01') is None


def test_fx_and_crypto_calendars_open_and_bar_dates():
    ts = pd.DatetimeIndex(pd.to_datetime(['2024-01-06 12:00', '2024-01-08 12:00'], utc=True))  # Sat, Mon
    assert is_open('fx', ts, '1d').tolist() == [False, True]
    assert is_open('fx', ts, '1h').tolist() == [False, True]
    assert is_open('crypto', ts).tolist() == [True, True]
    naive = bar_dates('fx', ['2024-01-06 12:00'])  # naive stamps are UTC
    assert list(naive) == [pd.Timestamp('2024-01-06', tz='UTC')]


def test_exchange_calendar_daily_bars_read_on_the_local_clock():
    # XNYS daily bars stamped at the 16:00 New York close: that date; a 00:00 UTC stamp is that date
    ts = pd.DatetimeIndex(pd.to_datetime(['2024-07-03 20:00', '2024-07-04 00:00', '2024-07-05 00:00'], utc=True))
    assert list(bar_dates('equity_us', ts)) == list(
        pd.to_datetime(['2024-07-03', '2024-07-04', '2024-07-05'], utc=True)
    )
    assert is_open('equity_us', ts, '1d').tolist() == [True, False, True]  # 4 July: a holiday
    assert len(bar_dates('XNYS', [])) == 0
    opens = session_opens('XNYS', '2024-07-01', '2024-07-08')
    assert len(opens) == 4 and opens[0] == pd.Timestamp('2024-07-01 13:30', tz='UTC')
    daily = expected_bars('XNYS', '1d', '2024-07-01', '2024-07-08')
    assert len(daily) == 4 and pd.Timestamp('2024-07-04', tz='UTC') not in daily


def test_exchange_hourly_bars_from_the_open_or_on_the_local_clock():
    kw = dict(calendar='XNYS', timeframe='1h', start='2024-07-01', end='2024-07-02')
    open_ = expected_bars(**kw)
    clock = expected_bars(**kw, align='clock')
    both = expected_bars(**kw, align='any')
    ny = lambda idx: [t.tz_convert('America/New_York').strftime('%H:%M') for t in idx]
    assert ny(open_) == ['09:30', '10:30', '11:30', '12:30', '13:30', '14:30', '15:30']
    assert ny(clock) == ['09:30', '10:00', '11:00', '12:00', '13:00', '14:00', '15:00']
    assert sorted(set(ny(open_)) | set(ny(clock))) == ny(both)


def test_annual_bars_of_crypto_and_an_exchange():
    assert annual_bars('crypto', '1d', years=4, end='2024-01-01') == pytest.approx(365.25)
    assert 250 <= annual_bars('XNYS', '1d', years=2, end='2024-01-01') <= 253


def test_exchange_with_a_lunch_break_expects_no_bar_inside_it():
    kw = dict(calendar='XTKS', timeframe='1h', start='2024-07-01', end='2024-07-02')
    tokyo = lambda idx: [t.tz_convert('Asia/Tokyo').strftime('%H:%M') for t in idx]
    assert tokyo(expected_bars(**kw)) == ['09:00', '10:00', '11:00', '13:00', '14:00']  # 12:00 is in the break
    assert tokyo(expected_bars(**kw, align='clock')) == ['09:00', '10:00', '11:00', '12:30', '13:00', '14:00']
    ts = pd.DatetimeIndex(pd.to_datetime(['2024-07-01 12:00', '2024-07-01 12:30', '2024-07-01 16:00'])).tz_localize(
        'Asia/Tokyo'
    )
    assert is_open('XTKS', ts, '1h').tolist() == [False, True, False]


def test_an_exchange_opening_on_the_hour_has_one_grid_for_every_alignment():
    kw = dict(calendar='XLON', timeframe='1h', start='2024-07-01', end='2024-07-02')
    assert list(expected_bars(**kw, align='clock')) == list(expected_bars(**kw))
    london = [t.tz_convert('Europe/London').strftime('%H:%M') for t in expected_bars(**kw)]
    assert london == ['08:00', '09:00', '10:00', '11:00', '12:00', '13:00', '14:00', '15:00', '16:00']


def test_an_exchange_whose_calendar_starts_after_1990_still_has_sessions():
    assert check_calendar('aixk') == 'AIXK'  # Astana International Exchange: exchange_calendars knows it from 2017
    days = expected_bars('AIXK', '1d', '2017-01-01', '2017-01-10')
    assert list(days) == list(pd.to_datetime(['2017-01-04', '2017-01-05', '2017-01-06', '2017-01-09'], utc=True))


def test_umask_is_read_without_proc_too(monkeypatch):
    "Where there is no /proc (macOS), the umask is set and restored at once: same value, unchanged afterwards."
    import autotrader.files as files

    before = _umask()

    def no_proc(path, *a, **kw):
        raise FileNotFoundError(path)

    monkeypatch.setattr(files, 'open', no_proc, raising=False)
    assert files._umask() == before
    monkeypatch.undo()
    assert _umask() == before
