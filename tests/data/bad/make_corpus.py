"""Regenerate the bad-input corpus of tests/test_bad_inputs.py (deterministic: same files, same bytes).

    python tests/data/bad/make_corpus.py          # writes the files and README.md next to this script

Every file is built from seeded synthetic hourly bars (`autotrader.data.connectors.sim_bars`, outages off) and then
broken in one specific way. The expected outcome of each file is in CORPUS below (and in README.md, generated from it);
tests/test_bad_inputs.py asserts those outcomes.
"""

from __future__ import annotations
import gzip
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # this checkout's autotrader
import pandas as pd
from autotrader.data.connectors import sim_bars

COLS = ['timestamp', 'open', 'high', 'low', 'close', 'volume']
TS_FMT = '%Y-%m-%d %H:%M:%S'  # naive: the file connector reads it as [file] timezone = UTC


def bars(days=2, start='2024-03-04') -> pd.DataFrame:
    "`days` days of 1h bars: 24 × days rows, no outages."
    b = sim_bars(
        'CORPUS', 'crypto', '1h', start, pd.Timestamp(start) + pd.Timedelta(days=days), seed=7, outage_rate=0.0
    )
    assert len(b) == 24 * days
    out = b[COLS].copy()
    out[['open', 'high', 'low', 'close', 'volume']] = out[['open', 'high', 'low', 'close', 'volume']].round(4)
    out['timestamp'] = out.timestamp.dt.strftime(TS_FMT)
    return out.astype({c: object for c in COLS})  # cells may become strings ('abc') below


def csv_bytes(df: pd.DataFrame, sep=',') -> bytes:
    return df.to_csv(index=False, sep=sep, lineterminator='\n').encode()


# ---------------------------------------------------------------- the broken files


def missing_column():
    return csv_bytes(bars().drop(columns=['volume']))


def non_numeric_prices():
    b = bars()
    b.loc[[5, 17, 30], 'close'] = 'abc'
    return csv_bytes(b)


def nonpositive_prices():
    b = bars()
    b.loc[[8, 20], 'close'] = 0.0
    b.loc[33, 'low'] = -1.5
    return csv_bytes(b)


def high_below_low():
    b = bars()
    for i in (6, 21, 40):
        b.loc[i, ['high', 'low']] = [b.at[i, 'low'], b.at[i, 'high']]
    return csv_bytes(b)


def duplicate_timestamps():
    b = bars()
    dup = b.loc[[10, 25]].copy()  # exact re-sends
    alt = b.loc[[31]].copy()
    alt['close'] = float(alt.close.iloc[0]) * 1.001
    alt['high'] = max(float(alt.high.iloc[0]), float(alt.close.iloc[0]))
    b = pd.concat(
        [b.iloc[:11], dup.iloc[:1], b.iloc[11:26], dup.iloc[1:], b.iloc[26:32], alt, b.iloc[32:]], ignore_index=True
    )
    return csv_bytes(b)


def out_of_order():
    b = bars()
    order = list(range(48))
    order[10:20] = order[15:20] + order[10:15]  # two blocks swapped
    order[40], order[41] = order[41], order[40]  # one pair swapped
    return csv_bytes(b.iloc[order])


def mixed_timezones():
    b = bars()
    ts = pd.to_datetime(b.timestamp)
    b['timestamp'] = [
        (t + pd.Timedelta(hours=1)).strftime(TS_FMT) + '+01:00' if i < 24 else t.strftime(TS_FMT)
        for i, t in enumerate(ts)
    ]
    return csv_bytes(b)


def empty():
    return b''


def header_only():
    return csv_bytes(bars().iloc[:0])


def truncated_gz():
    blob = gzip.compress(csv_bytes(bars()), compresslevel=6, mtime=0)
    return blob[: len(blob) // 2]


def huge_gap():
    return csv_bytes(pd.concat([bars(2, '2024-03-04'), bars(2, '2024-03-27')], ignore_index=True))  # 3 weeks missing


def semicolon():
    return csv_bytes(bars(), sep=';')


def unparseable_timestamps():
    b = bars()
    b.loc[[3, 19, 36], 'timestamp'] = ['yesterday', '2024-13-45 25:00:00', 'n/a']
    return csv_bytes(b)


def unparseable_timestamps_utc():
    b = bars()
    b['timestamp'] = [t.replace(' ', 'T') + 'Z' for t in b.timestamp]
    b.loc[[7, 29], 'timestamp'] = ['garbage', '']
    return csv_bytes(b)


def negative_volume():
    b = bars()
    b.loc[[12, 44], 'volume'] = -10.0
    return csv_bytes(b)


def stale_run():
    b = bars(5)  # 120 rows
    c = b.at[40, 'close']
    b.loc[40:74, ['open', 'high', 'low', 'close']] = c  # 35 identical bars: the first is fine, 34 are stale
    return csv_bytes(b)


def bad_tick():
    b = bars()
    b.at[30, 'close'] = round(float(b.at[30, 'close']) * 1.6, 4)  # one close × 1.6, then back
    b.at[30, 'high'] = b.at[30, 'close']
    return csv_bytes(b)


def mostly_bad():
    b = bars()
    b.loc[::2, 'close'] = 0.0
    b.loc[1::4, 'volume'] = -1.0
    return csv_bytes(b)


# name: (builder, data rows, what is wrong, expected outcome)
CORPUS = {
    'missing_column.csv': (missing_column, 48, 'no volume column', 'IngestError: missing column(s) volume'),
    'non_numeric_prices.csv': (
        non_numeric_prices,
        48,
        "close is 'abc' in rows 5, 17, 30",
        'ok; 3 bars quarantined: non_numeric_close',
    ),
    'nonpositive_prices.csv': (
        nonpositive_prices,
        48,
        'close = 0 in rows 8, 20; low = -1.5 in row 33',
        'ok; 3 bars quarantined: nonpositive_close (2), nonpositive_low (1)',
    ),
    'high_below_low.csv': (
        high_below_low,
        48,
        'high and low swapped in rows 6, 21, 40',
        'ok; 3 bars quarantined: high_below_low',
    ),
    'duplicate_timestamps.csv': (
        duplicate_timestamps,
        51,
        'bars 10 and 25 sent twice (again as rows 11, 27), bar 31 (row 33) re-sent with another close as row 34',
        'ok; the 3 later copies (rows 11, 27, 34) quarantined: duplicate_timestamp',
    ),
    'out_of_order.csv': (
        out_of_order,
        48,
        'two blocks of 5 bars swapped, one pair swapped',
        'ok; nothing quarantined, bars stored in time order, warning "out of order"',
    ),
    'mixed_timezones.csv': (
        mixed_timezones,
        48,
        'first 24 rows carry +01:00, the rest are naive',
        'IngestError: mixed time zones',
    ),
    'empty.csv': (empty, 0, '0 bytes', 'IngestError: empty file'),
    'header_only.csv': (header_only, 0, 'a header, no rows', 'IngestError: no rows (only a header)'),
    'truncated.csv.gz': (truncated_gz, None, 'a gzip of 48 rows cut in half', 'IngestError: truncated or corrupt gzip'),
    'huge_gap.csv': (
        huge_gap,
        96,
        '2 days, 3 weeks missing, 2 days',
        'ok; nothing quarantined, completeness warning naming the largest gap',
    ),
    'semicolon.csv': (
        semicolon,
        48,
        "';'-delimited",
        "with [file] delimiter = ',': IngestError naming the wrong delimiter; with delimiter = auto: ok, 48 clean bars",
    ),
    'unparseable_timestamps.csv': (
        unparseable_timestamps,
        48,
        "timestamps 'yesterday', '2024-13-45 25:00:00', 'n/a'",
        'ok; 3 bars quarantined: unparseable_timestamp',
    ),
    'unparseable_timestamps_utc.csv': (
        unparseable_timestamps_utc,
        48,
        "ISO timestamps with 'Z'; 'garbage' in row 7, an empty timestamp in row 29",
        'ok; 2 bars quarantined: unparseable_timestamp (not a "mixed time zones" error: a bad timestamp has no zone)',
    ),
    'negative_volume.csv': (
        negative_volume,
        48,
        'volume = -10 in rows 12, 44',
        'ok; 2 bars quarantined: negative_volume',
    ),
    'stale_run.csv': (stale_run, 120, 'OHLC frozen for 35 bars (rows 40-74)', 'ok; 34 bars quarantined: stale_price'),
    'bad_tick.csv': (
        bad_tick,
        48,
        'close × 1.6 in row 30 (high raised with it), then back',
        'ok; 1 bar quarantined: return_spike',
    ),
    'mostly_bad.csv': (
        mostly_bad,
        48,
        'close = 0 in every other row, negative volume in a quarter',
        'IngestError: more than [validation] max_quarantine_share quarantined',
    ),
}


def readme() -> str:
    lines = [
        '# Bad-input corpus',
        '',
        'Files read by `tests/test_bad_inputs.py` with `source=file`, `file.path=<file>` (hourly bars; the',
        'instrument is the file name). Regenerate them with `python tests/data/bad/make_corpus.py` (deterministic).',
        'Row numbers count data rows from 0. "IngestError" runs store nothing (the store is byte-identical',
        'afterwards); "ok" runs quarantine the bad bars with the reason shown and store the rest, so that',
        'rows in = clean + quarantined = data rows in the file. Every file is in the raw archive afterwards, also',
        'when it could not be parsed.',
        '',
        '| file | data rows | what is wrong | expected outcome |',
        '|---|---|---|---|',
    ]
    for name, (_, n, what, outcome) in CORPUS.items():
        lines.append(f"| `{name}` | {'–' if n is None else n} | {what} | {outcome} |")
    return '\n'.join(lines) + '\n'


def build(out: Path = HERE) -> dict[str, bytes]:
    files = {name: fn() for name, (fn, *_) in CORPUS.items()}
    for name, data in files.items():
        (out / name).write_bytes(data)
    (out / 'README.md').write_text(readme())
    return files


if __name__ == '__main__':
    for name, data in build().items():
        print(f'{len(data):6d}  {name}')
