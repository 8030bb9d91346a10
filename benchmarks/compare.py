"""Regression guard: the quick variant of every benchmark, each figure printed next to the one recorded in
benchmarks/README.md (section "Regression guard") as a ratio.

    python benchmarks/compare.py                  # every benchmark, quick sizes (about 3.5 minutes here)
    python benchmarks/compare.py --only ingest,health
    python benchmarks/compare.py --record         # measure, then write the figures into benchmarks/README.md

Each benchmark runs as its own subprocess (its own script, the quick sizes below) and its figures are read from what
it prints. `ratio` is now / recorded; `change` says whether that is better or worse for this figure (times: lower is
better; throughputs and the ratios against the peers: higher). The ratios against a peer measured in the same run
(ta, a scipy loop, plain optuna, `mlflow models serve`) are the figures to trust on a noisy machine; absolute times
move with the load. Exit code 1 when a figure is worse than recorded by more than --tolerance (default 35 %), so
a change to a measured path can be checked before it is closed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / 'README.md'
BEGIN, END = '<!-- compare.py: begin -->', '<!-- compare.py: end -->'


@dataclass(frozen=True)
class Figure:
    key: str  # the row of the README table
    bench: str  # the benchmark that prints it
    pattern: str  # regular expression over its output; group 1 is the number
    unit: str
    higher_is_better: bool
    what: str


QUICK = {  # benchmark → the arguments of its quick variant
    'ingest': ['--runs', '1', '--instruments', '2', '--bars-per-instrument', '20000'],
    'features': ['--runs', '1', '--instruments', '2', '--bars-per-instrument', '20000'],
    'health': ['--features', '20', '--rows', '20000', '--runs', '1'],
    'train': ['--runs', '1', '--samples', '20000', '--trials', '5'],
    'gateway': ['--runs', '1', '--seconds', '2', '--clients', '8', '--rate', '200'],
}

NUM = r'([0-9][0-9,]*\.?[0-9]*)'
FIGURES = [
    Figure(
        'ingest bars/s',
        'ingest',
        rf'ingest [0-9,]+ bars: median [0-9.]+ s \({NUM} bars/s\)',
        'bars/s',
        True,
        'ingest of 2 × 20,000 bars, end to end',
    ),
    Figure(
        'features full set bars/s',
        'features',
        rf'^full set .*?\s{NUM}\s*$',
        'bars/s',
        True,
        'the standard set on 2 × 20,000 bars',
    ),
    Figure(
        'features vs ta',
        'features',
        rf'ta / autotrader on the shared indicators: {NUM}x',
        '×',
        True,
        'ta time / ours on the shared indicators',
    ),
    Figure(
        'health drift + quality s', 'health', rf'drift \+ quality {NUM} s$', 's', False, '20 features × 20,000 rows'
    ),
    Figure(
        'health vs scipy loop',
        'health',
        rf'scipy loop / library drift = {NUM}×',
        '×',
        True,
        'scipy per-feature loop time / our drift',
    ),
    Figure(
        'train pipeline s',
        'train',
        rf'^pipeline: median {NUM} s',
        's',
        False,
        'train + evaluate, 20,000 samples, 5 trials',
    ),
    Figure(
        'train vs plain optuna',
        'train',
        None,
        '×',
        False,
        'our pipeline time / plain optuna + HGB + TimeSeriesSplit (lower is better)',
    ),
    Figure(
        'gateway GET vs mlflow',
        'gateway',
        rf'ours GET /v1/signal / mlflow: {NUM}x',
        '×',
        True,
        'throughput at 8 clients / mlflow models serve',
    ),
    Figure(
        'gateway POST vs mlflow',
        'gateway',
        rf'ours POST /v1/predict / mlflow: {NUM}x',
        '×',
        True,
        'throughput at 8 clients / mlflow models serve',
    ),
    Figure(
        'gateway GET p99 ms',
        'gateway',
        rf'GET /v1/signal at [0-9.]+ req/s: p99 {NUM} ms',
        'ms',
        False,
        'open loop, 200 req/s',
    ),
]


def _num(s: str) -> float:
    return float(s.replace(',', ''))


def figures_from(bench: str, out: str) -> dict:
    "The figures of `bench` found in its output `out`."
    found = {}
    for f in FIGURES:
        if f.bench != bench or f.pattern is None:
            continue
        m = re.search(f.pattern, out, re.M)
        if m:
            found[f.key] = _num(m.group(1))
    if bench == 'train':
        p = re.search(rf'^pipeline: median {NUM} s', out, re.M)
        b = re.search(rf'^baseline: median {NUM} s', out, re.M)
        if p and b and _num(b.group(1)) > 0:
            found['train vs plain optuna'] = _num(p.group(1)) / _num(b.group(1))
    return found


def read_recorded(text: str) -> dict:
    "{figure: value} from the README's regression-guard table."
    if BEGIN not in text:
        return {}
    block = text[text.index(BEGIN) : text.index(END)]
    rec = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) >= 2 and cells[0] in {f.key for f in FIGURES}:
            try:
                rec[cells[0]] = _num(cells[1])
            except ValueError:
                pass
    return rec


def table(values: dict, when: str) -> str:
    "The README block for `values` (measured `when`)."
    rows = ['| figure | recorded | unit | better | what |', '|---|---:|---|---|---|']
    for f in FIGURES:
        if f.key in values:
            v = values[f.key]
            rows.append(
                f"| {f.key} | {v:,.0f} | {f.unit} | {'higher' if f.higher_is_better else 'lower'} | {f.what} |"
                if v >= 1000
                else f"| {f.key} | {v:.3g} | {f.unit} | {'higher' if f.higher_is_better else 'lower'} | {f.what} |"
            )
    return (
        f"{BEGIN}\n_Recorded {when} with `python benchmarks/compare.py --record`._\n\n" + '\n'.join(rows) + f"\n{END}"
    )


def write_recorded(text: str, values: dict, when: str) -> str:
    "`text` (the README) with the regression-guard block replaced by `values` (kept figures not measured now)."
    merged = {**read_recorded(text), **values}
    block = table(merged, when)
    if BEGIN in text:
        return text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    return text.rstrip('\n') + '\n\n## Regression guard (`compare.py`)\n\n' + block + '\n'


def compare(now: dict, recorded: dict, tolerance: float) -> tuple[list[str], list[str]]:
    "Printable rows, and the figures worse than recorded by more than `tolerance`."
    rows, worse = [], []
    for f in FIGURES:
        if f.key not in now:
            continue
        n, r = now[f.key], recorded.get(f.key)
        if r is None or r == 0:
            rows.append(f"{f.key:28} {n:>12,.3g} {'—':>12} {'':>7}  (nothing recorded)")
            continue
        ratio = n / r
        better = ratio >= 1 if f.higher_is_better else ratio <= 1
        loss = (1 / ratio - 1) if f.higher_is_better else (ratio - 1)
        flag = 'better' if better else (f'WORSE by {loss:.0%}' if loss > tolerance else f'worse by {loss:.0%}')
        if not better and loss > tolerance:
            worse.append(f.key)
        rows.append(f"{f.key:28} {n:>12,.3g} {r:>12,.3g} {ratio:>7.2f}  {flag}")
    return rows, worse


def run_bench(bench: str, log) -> tuple[dict, float]:
    cmd = [sys.executable, str(HERE / f'{bench}.py'), *QUICK[bench]]
    log(f"== {bench}: python benchmarks/{bench}.py {' '.join(cmd[2:])}")
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    took = time.perf_counter() - t
    if p.returncode != 0:
        log(f"   {bench} failed (exit {p.returncode}):\n{(p.stdout + p.stderr)[-2000:]}")
        return {}, took
    found = figures_from(bench, p.stdout)
    missing = [f.key for f in FIGURES if f.bench == bench and f.key not in found]
    if missing:
        log(f"   {bench}: not found in its output: {', '.join(missing)}")
    log(f"   {took:.0f} s: " + ', '.join(f'{k} {v:,.3g}' for k, v in found.items()))
    return found, took


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--only', help=f"comma-separated benchmarks (default: all: {','.join(QUICK)})")
    ap.add_argument('--record', action='store_true', help='write the figures measured into benchmarks/README.md')
    ap.add_argument(
        '--tolerance', type=float, default=0.35, help='worse by more than this fraction fails (default 0.35)'
    )
    a = ap.parse_args(argv)
    benches = a.only.split(',') if a.only else list(QUICK)
    unknown = [b for b in benches if b not in QUICK]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(QUICK)}")
    log = lambda m: print(m, flush=True)
    now, total, failed = {}, 0.0, []
    for b in benches:
        found, took = run_bench(b, log)
        total += took
        now.update(found)
        if not found:
            failed.append(b)
    text = README.read_text(encoding='utf-8')
    recorded = read_recorded(text)
    rows, worse = compare(now, recorded, a.tolerance)
    print(f"\n{'figure':28} {'now':>12} {'recorded':>12} {'ratio':>7}  change (ratio = now / recorded)")
    print('\n'.join(rows))
    print(
        f"\n{len(benches)} benchmark(s) in {total:.0f} s; worse than recorded by more than {a.tolerance:.0%}: "
        f"{', '.join(worse) or 'none'}" + (f"; failed: {', '.join(failed)}" if failed else '')
    )
    if a.record and now:
        README.write_text(write_recorded(text, now, time.strftime('%Y-%m-%d')), encoding='utf-8')
        print(f"recorded in {README.relative_to(HERE.parent)}")
    return 1 if worse or failed else 0


if __name__ == '__main__':
    sys.exit(main())
