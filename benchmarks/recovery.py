"""Recovery: `autotrader archive verify` and `autotrader store rebuild` on the archive of a real ingest, against the
peer a team without a rebuild command would use — ingesting the same range again (from the sim here; from a broker it
would also be rate-limited).

    python benchmarks/recovery.py                  # 5 sim instruments, 180 days of 1h bars, median of 3 runs
    python benchmarks/recovery.py --runs 1 --days 30

Each run: ingest the range into a fresh data folder (timed: the peer), verify the archive (timed), delete the store,
rebuild it (timed), and check the rebuilt store's content hash equals the ingested one (stops otherwise)."""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def one(days: int, tmp: Path) -> dict:
    import pandas as pd
    from autotrader.config import load_settings
    from autotrader.pipelines.ingest import ingest
    from autotrader.ops.recovery import rebuild_store, store_content_hash, verify_archive

    empty = tmp / 'settings.ini'
    empty.write_text('')
    st = load_settings(
        empty,
        overrides={
            'data.dir': str(tmp / 'data'),
            'data.timeframe': '1h',
            'instruments.symbols': 'BTC-USD, ETH-USD, SOL-USD, EUR-USD:fx, SPY:equity_us',
        },
        env={},
    )
    start = pd.Timestamp('2024-01-01', tz='UTC')
    end = start + pd.Timedelta(days=days)
    t = time.perf_counter()
    r = ingest(start=start, end=end, settings=st, progress=False)
    t_ingest = time.perf_counter() - t
    t = time.perf_counter()
    rep = verify_archive(st)
    t_verify = time.perf_counter() - t
    assert rep.ok, rep.summary()
    before = store_content_hash(st.store.dir)
    shutil.rmtree(st.store.dir)
    t = time.perf_counter()
    res = rebuild_store(st)
    t_rebuild = time.perf_counter() - t
    if res.content_hash != before:
        raise SystemExit('the rebuilt store differs from the ingested one')
    return dict(
        bars=len(r.bars), objects=rep.checked, bytes=rep.bytes, ingest=t_ingest, verify=t_verify, rebuild=t_rebuild
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--days', type=int, default=180)
    a = ap.parse_args()
    runs = []
    for i in range(a.runs):
        with tempfile.TemporaryDirectory() as d:
            runs.append(one(a.days, Path(d)))
    med = {k: statistics.median(r[k] for r in runs) for k in ('ingest', 'verify', 'rebuild')}
    r0 = runs[0]
    print(
        f"{r0['bars']:,} bars, {r0['objects']} archive objects ({r0['bytes'] / 1e6:.2f} MB), median of {a.runs} run(s):"
    )
    print(f"  archive verify  {med['verify']:6.2f} s   ({r0['objects'] / med['verify']:,.0f} objects/s)")
    print(f"  store rebuild   {med['rebuild']:6.2f} s   (same content hash as the ingested store)")
    print(
        f"  ingest again    {med['ingest']:6.2f} s   (the peer) → rebuild is {med['ingest'] / med['rebuild']:.1f}× faster"
    )


if __name__ == '__main__':
    main()
