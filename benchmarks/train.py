"""Training benchmark: the specification's 90 days of one-minute bars (130,000 samples, 40 features), 5-fold purged
walk-forward CV, 30 optuna trials — the train + evaluate jobs end to end, against plain optuna over the same model.

    python benchmarks/train.py                         # full size, median of 3 runs of each (about 15 minutes)
    python benchmarks/train.py --runs 1 --samples 20000 --trials 5     # a quick check (about a minute)

What is measured (see benchmarks/README.md, section `train.py`):
- Data, prepared once and not timed: one sim instrument (crypto calendar, `sim.outage_rate = 0`), 1-minute bars,
  ingested with the `standard` feature set (42 columns, of which the two quoted-spread columns are empty for the
  sim source: 40 features), enough bars that `samples` rows remain after the features' warm-up (1,464 bars) and the
  1-bar label horizon.
- `pipeline`: `autotrader.train.pipeline.train()` then `evaluate_version()`, hermetic settings: the prepared store,
  a fresh data folder (so a fresh optuna study and a fresh SQLite MLflow registry) per run, `[train]` defaults
  (model hgb, baseline logistic, objective sharpe, 5-fold walk-forward purged CV with a 1 % embargo, pruning, TPE,
  1 thread) except `n_trials`. Timed: both calls end to end — reading the store, labels, windows, tuning,
  the baseline, validation, the final fit, permutation importance, MLflow logging and registration, the test
  backtest, gates, model card, decision.
- `baseline`: plain optuna (TPESampler(seed=0), in memory, no pruner) over the same HistGradientBoostingClassifier
  search space (`autotrader.train.tuning.suggest_params`), each trial `cross_val_score(…, cv=TimeSeriesSplit(5),
  scoring='neg_log_loss')` on all the samples × 40 features, under the same thread limit. Timed: the study only
  (the table is built before the clock starts).
- Every measured run is its own Python subprocess; its peak memory is the process's RSS high-water mark
  (`getrusage(RUSAGE_SELF).ru_maxrss`: interpreter, imports, data, the run). Imports are done before the clock
  starts. The figures are the medians over `--runs`.
"""

from __future__ import annotations
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, run_child as _run, maxrss_bytes as _maxrss_bytes  # noqa: E402

TARGET_SECONDS, TARGET_BYTES = 120.0, 1024**3
WARMUP_BARS = 1464 + 10  # the standard set's lookback (2 x regime_window + …) plus a margin


def _settings(load_settings, root, store_dir, trials, folds):
    ini = Path(root) / 'bench.ini'
    ini.write_text('')  # hermetic: no ./settings.ini, no AUTOTRADER__ variables
    return load_settings(
        ini,
        overrides={
            'data.dir': str(Path(root) / 'data'),
            'store.dir': str(store_dir),
            'data.source': 'sim',
            'data.timeframe': '1m',
            'sim.outage_rate': '0',
            'instruments.symbols': 'SIM0:crypto',
            'features.set': 'standard',
            'train.n_trials': str(trials),
            'train.cv_folds': str(folds),
            'train.timeout': '0',
        },
        env={},
    )


# ---------------------------------------------------------------- children (one measured run per process)


def child_pipeline(spec):
    import warnings

    warnings.filterwarnings('ignore')
    from autotrader.config import load_settings
    from autotrader.pipelines.train import train
    from autotrader.pipelines.evaluate import evaluate_version

    root = Path(tempfile.mkdtemp(dir=spec['tmpdir']))
    try:
        st = _settings(load_settings, root, spec['store'], spec['trials'], spec['folds'])
        rss0 = _maxrss_bytes()
        t0 = time.perf_counter()
        res = train(st)
        t1 = time.perf_counter()
        ev = evaluate_version(st)
        t2 = time.perf_counter()
        return dict(
            seconds=t2 - t0,
            train_s=t1 - t0,
            evaluate_s=t2 - t1,
            rss_before=rss0,
            peak_rss=_maxrss_bytes(),
            rows=len(res.data.frame),
            features=len(res.data.features),
            cv_rows=int(len(res.windows.train)),
            trials=res.tuning.n_trials,
            pruned=int((res.tuning.trials.state == 'PRUNED').sum()),
            selected=res.selected,
            timings={k: round(v, 2) for k, v in res.timings.items()},
            evaluate_timings={k: round(v, 2) for k, v in ev.timings.items()},
            promote=ev.promote,
            test_sharpe=float(ev.metrics.loc['portfolio', 'sharpe']),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def child_baseline(spec):
    import warnings

    warnings.filterwarnings('ignore')
    import optuna
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import TimeSeriesSplit, cross_val_score
    from threadpoolctl import threadpool_limits
    from autotrader.config import load_settings
    from autotrader.train.core import training_data
    from autotrader.train.tuning import suggest_params

    root = Path(tempfile.mkdtemp(dir=spec['tmpdir']))
    try:
        st = _settings(load_settings, root, spec['store'], spec['trials'], spec['folds'])
        d = training_data(st)
        X, y = d.X.to_numpy(), d.y
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        rss0 = _maxrss_bytes()
        t0 = time.perf_counter()
        with threadpool_limits(limits=st.train.threads or None):

            def objective(trial):
                m = HistGradientBoostingClassifier(**suggest_params(trial, 'hgb'), early_stopping=False, random_state=0)
                return cross_val_score(m, X, y, cv=TimeSeriesSplit(spec['folds']), scoring='neg_log_loss').mean()

            study = optuna.create_study(direction='maximize', sampler=optuna.samplers.TPESampler(seed=0))
            study.optimize(objective, n_trials=spec['trials'])
        return dict(
            seconds=time.perf_counter() - t0,
            rss_before=rss0,
            peak_rss=_maxrss_bytes(),
            rows=len(y),
            features=X.shape[1],
            trials=len(study.trials),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- parent


def prepare(tmpdir, samples):
    "Ingest one instrument's 1-minute sim bars with the standard feature set into a store; returns the store dir."
    import warnings

    warnings.filterwarnings('ignore')
    import pandas as pd
    from autotrader.config import load_settings
    from autotrader.pipelines.ingest import ingest

    root = Path(tempfile.mkdtemp(dir=tmpdir, prefix='train-bench-data-'))
    st = _settings(load_settings, root, root / 'store', 1, 5)
    start = pd.Timestamp('2024-01-01T00:00:00Z')
    end = start + pd.Timedelta(minutes=samples + WARMUP_BARS + 1)
    t = time.perf_counter()
    ingest(start=start, end=end, settings=st, progress=False)
    print(
        f"prepared {samples + WARMUP_BARS + 1:,} one-minute bars ({(end - start) / pd.Timedelta(days=1):.1f} days) "
        f"with the standard feature set in {time.perf_counter() - t:.1f} s (not timed)",
        flush=True,
    )
    return root


def run_child(kind, spec):
    env = {k: v for k, v in os.environ.items() if not k.startswith('AUTOTRADER')}
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get('PYTHONPATH')]))
    return _run([__file__, '--child', kind, '--spec', json.dumps(spec)], f'{kind} run', env=env)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--samples', type=int, default=130_000)
    ap.add_argument('--trials', type=int, default=30)
    ap.add_argument('--folds', type=int, default=5)
    ap.add_argument('--only', choices=['pipeline', 'baseline'], help='measure one side only')
    ap.add_argument('--tmpdir', default=None)
    ap.add_argument('--json', help='write the raw per-run results here')
    ap.add_argument('--child', choices=['pipeline', 'baseline'], help=argparse.SUPPRESS)
    ap.add_argument('--spec', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        r = (child_pipeline if a.child == 'pipeline' else child_baseline)(json.loads(a.spec))
        emit(r)
        return
    data = prepare(a.tmpdir, a.samples)
    spec = dict(store=str(data / 'store'), tmpdir=a.tmpdir, trials=a.trials, folds=a.folds)
    res = {'pipeline': [], 'baseline': []}
    try:
        for i in range(a.runs):
            for kind in ('pipeline', 'baseline'):
                if a.only and kind != a.only:
                    continue
                r = run_child(kind, spec)
                res[kind].append(r)
                extra = (
                    (
                        f" (train {r['train_s']:.1f} s, evaluate {r['evaluate_s']:.1f} s; {r['trials']} trials, {r['pruned']} pruned; "
                        f"selected {r['selected']}; stages {r['timings']})"
                    )
                    if kind == 'pipeline'
                    else ''
                )
                print(
                    f"run {i + 1} {kind:8s}: {r['seconds']:7.1f} s, peak RSS {r['peak_rss'] / 1e6:6.0f} MB "
                    f"(before the run {r['rss_before'] / 1e6:.0f} MB), {r['rows']:,} rows × {r['features']} features{extra}",
                    flush=True,
                )
    finally:
        shutil.rmtree(data, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    med = {k: (statistics.median(x['seconds'] for x in v), max(x['peak_rss'] for x in v)) for k, v in res.items() if v}
    print()
    for k, (s, m) in med.items():
        print(f"{k:8s}: median {s:.1f} s over {len(res[k])} run(s), peak RSS {m / 1e6:.0f} MB")
    if 'pipeline' in med:
        s, m = med['pipeline']
        print(
            f"targets: < {TARGET_SECONDS:.0f} s → {'met' if s < TARGET_SECONDS else 'MISSED'}; "
            f"< 1 GiB → {'met' if m < TARGET_BYTES else 'MISSED'}"
        )
    if len(med) == 2:
        print(
            f"ratio pipeline / plain optuna: time {med['pipeline'][0] / med['baseline'][0]:.2f}×, "
            f"peak memory {med['pipeline'][1] / med['baseline'][1]:.2f}×"
        )


if __name__ == '__main__':
    main()
