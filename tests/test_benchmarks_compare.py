"""benchmarks/compare.py, the regression guard: figures read from each benchmark's real output format, the README
table read and rewritten, and a worse figure flagged (without running the benchmarks: they are timed, not tested)."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('bench_compare', ROOT / 'benchmarks' / 'compare.py')
C = importlib.util.module_from_spec(spec)
sys.modules['bench_compare'] = C  # dataclasses look their module up
spec.loader.exec_module(C)

OUT = {
    'ingest': 'ingest 40,000 bars: median 4.1 s (9,756 bars/s), peak RSS 0.52 GB\n',
    'features': (
        'full set standard:1 (42 features)             0.61        0.61        65,574\n'
        'ta / autotrader on the shared indicators: 21.7x   (outputs agree to 1e-9 relative)\n'
    ),
    'health': (
        'median of 1: library drift 0.021 s, quality 0.050 s, drift + quality 0.071 s\n'
        'ratio: scipy loop / library drift = 2.4×; scipy loop / library drift + quality = 0.7×\n'
    ),
    'train': 'pipeline: median 41.0 s over 1 run(s), peak RSS 800 MB\nbaseline: median 50.0 s over 1 run(s), peak RSS 600 MB\n',
    'gateway': (
        'throughput at 8 clients, ours GET /v1/signal / mlflow: 48.2x\n'
        'throughput at 8 clients, ours POST /v1/predict / mlflow: 7.1x\n'
        'GET /v1/signal at 200 req/s: p99 3.10 ms (target < 10 ms)\n'
    ),
}


def test_every_figure_is_read_from_its_benchmarks_output():
    now = {}
    for bench, out in OUT.items():
        now.update(C.figures_from(bench, out))
    assert set(now) == {f.key for f in C.FIGURES}
    assert now['ingest bars/s'] == 9756 and now['features full set bars/s'] == 65574
    assert now['train vs plain optuna'] == 41.0 / 50.0 and now['gateway GET p99 ms'] == 3.10


def test_the_readme_table_round_trips_and_a_worse_figure_is_flagged():
    text = '# Benchmarks\n\nsome prose\n'
    rec = {'ingest bars/s': 10000.0, 'health drift + quality s': 0.07, 'gateway GET vs mlflow': 50.0}
    text = C.write_recorded(text, rec, '2026-12-07')
    assert text.startswith('# Benchmarks\n\nsome prose') and C.read_recorded(text) == rec
    text2 = C.write_recorded(text, {'ingest bars/s': 12000.0}, '2026-12-08')  # one figure updated, the others kept
    assert C.read_recorded(text2) == {**rec, 'ingest bars/s': 12000.0} and text2.count(C.BEGIN) == 1
    rows, worse = C.compare(
        {'ingest bars/s': 5000.0, 'health drift + quality s': 0.05, 'gateway GET vs mlflow': 45.0}, rec, 0.35
    )
    assert worse == ['ingest bars/s']  # half the throughput: worse by 100 %
    assert any('better' in r for r in rows if r.startswith('health')) and any('worse by 11%' in r for r in rows)


def test_the_readme_records_every_figure():
    rec = C.read_recorded((ROOT / 'benchmarks' / 'README.md').read_text())
    assert set(rec) == {f.key for f in C.FIGURES}, set(f.key for f in C.FIGURES) - set(rec)
