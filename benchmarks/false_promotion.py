"""False-promotion rate of the promotion gates: a random walk (`[sim] alpha = 0`, no strategy can have an edge) through
ingest → train → evaluate for many seeds, and how often each gate alone, and all of them together, would have
promoted the model.

    python benchmarks/false_promotion.py                          # 24 random-walk seeds (20-60 minutes on 2 vCPUs)
    python benchmarks/false_promotion.py --seeds 4 --trials 3     # a quick check
    python benchmarks/false_promotion.py --alpha 0.3 --seeds 8    # the demo edge: how often the gates promote it

What is measured (see benchmarks/README.md, section `false_promotion.py`):
- Each seed is `[sim] seed`: a different synthetic market. Settings are hermetic (an empty settings file, no
  AUTOTRADER__ variables) and are the shipped defaults — the five instruments of `[instruments] symbols` (three
  crypto, EUR-USD, SPY), 180 days of 1h bars ending at `--end`, purged 5-fold walk-forward CV, costs, gates —
  except `sim.alpha`, `sim.seed`, `train.n_trials` (`--trials`) and a fresh data folder per seed.
- The library's own `ingest()`, `train()` and `evaluate_version()` run; the gates' verdicts are read from the
  recorded decision (`GateDecision`), each gate alone and all together. With fewer trials than the default 30 the
  deflated Sharpe ratio is deflated less (a smaller expected maximum of the trials), so its false-promotion rate
  here is, if anything, higher than with the defaults.
- The rates are counts over seeds with a 95 % Clopper-Pearson interval; the nominal rate of the deflated-Sharpe
  gate is 1 - min_deflated_sharpe (5 % at 0.95) for a model whose true Sharpe ratio is 0, and lower after costs.
"""

from __future__ import annotations
import argparse
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path


def run_seed(seed, alpha, trials, end, tmpdir):
    from autotrader.config import load_settings
    from autotrader.pipelines.ingest import ingest
    from autotrader.pipelines.train import train
    from autotrader.pipelines.evaluate import evaluate_version

    root = Path(tempfile.mkdtemp(dir=tmpdir))
    try:
        ini = root / 'bench.ini'
        ini.write_text('')
        st = load_settings(
            ini,
            overrides={
                'data.dir': str(root / 'data'),
                'data.end': end,
                'sim.alpha': str(alpha),
                'sim.seed': str(seed),
                'train.n_trials': str(trials),
            },
            env={},
        )
        t0 = time.perf_counter()
        ingest(settings=st, progress=False)
        train(st)
        ev = evaluate_version(st)
        p = ev.metrics.loc['portfolio']
        gates = {g['gate']: bool(g['passed']) for g in ev.gates.gates}
        return dict(
            seed=seed,
            alpha=alpha,
            promote=bool(ev.promote),
            gates=gates,
            seconds=round(time.perf_counter() - t0, 1),
            **{
                k: float(p[k])
                for k in (
                    'deflated_sharpe',
                    'sharpe',
                    'expected_max_sharpe',
                    'max_drawdown',
                    'win_rate',
                    'n_trials',
                    'n_bars',
                )
            },
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def clopper_pearson(k, n, level=0.95):
    from scipy.stats import beta

    a = (1 - level) / 2
    return (
        0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1)),
        1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k)),
    )


def summary(rows) -> list[tuple]:
    "(gate, promoted, seeds, rate, low, high) for each gate alone and all together."
    names = list(rows[0]['gates'])
    out = []
    for name in names + ['all gates']:
        k = sum(r['promote'] if name == 'all gates' else r['gates'][name] for r in rows)
        out.append((name, k, len(rows), k / len(rows), *clopper_pearson(k, len(rows))))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seeds', type=int, default=24, help='number of sim seeds (default 24)')
    ap.add_argument('--first-seed', type=int, default=1)
    ap.add_argument('--alpha', type=float, default=0.0, help='sim alpha (default 0: a random walk)')
    ap.add_argument(
        '--trials', type=int, default=10, help='train.n_trials per seed (default 10; the shipped default is 30)'
    )
    ap.add_argument('--end', default='2025-01-01', help='end of the ingested range (fixed: the sim is deterministic)')
    ap.add_argument('--tmpdir', default=None)
    ap.add_argument('--json', default=None, help='write the per-seed results here')
    a = ap.parse_args()
    warnings.filterwarnings('ignore')
    import logging

    logging.getLogger('mlflow').setLevel(logging.ERROR)
    logging.getLogger('alembic').setLevel(logging.ERROR)
    from autotrader.config import SCHEMA

    g = {k: SCHEMA['gates'][k].default for k in ('min_deflated_sharpe', 'min_sharpe', 'max_drawdown', 'min_win_rate')}
    print(
        f"sim alpha {a.alpha}, seeds {a.first_seed}..{a.first_seed + a.seeds - 1}, {a.trials} trials per seed; gates: "
        f"DSR > {g['min_deflated_sharpe']}, Sharpe > {g['min_sharpe']}, max drawdown < {g['max_drawdown']}, win rate > {g['min_win_rate']}"
    )
    print(
        f"{'seed':>4} {'DSR':>6} {'Sharpe':>7} {'SR0':>6} {'maxDD':>6} {'win':>6} {'bars':>5} {'trials':>6}  promote  {'s':>5}"
    )
    rows = []
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        r = run_seed(seed, a.alpha, a.trials, a.end, a.tmpdir)
        rows.append(r)
        print(
            f"{seed:>4} {r['deflated_sharpe']:6.3f} {r['sharpe']:7.2f} {r['expected_max_sharpe']:6.2f} {r['max_drawdown']:6.3f} "
            f"{r['win_rate']:6.3f} {r['n_bars']:5.0f} {r['n_trials']:6.0f}  {str(r['promote']):7}  {r['seconds']:5.1f}",
            flush=True,
        )
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    what = 'false-promotion' if a.alpha == 0 else 'promotion'
    print(f"\n{what} rate over {len(rows)} seeds (95 % Clopper-Pearson interval):")
    for name, k, n, rate, lo, hi in summary(rows):
        print(f"  {name:<16} {k:>3}/{n:<3} = {rate:6.1%}   [{lo:.1%}, {hi:.1%}]")


if __name__ == '__main__':
    main()
