"""The rollout's P&L verdict over many seeds: false rollbacks of equal versions, detection time of an inverted and of
a cost-doubled version, and time to promote a better one — per stage configuration.

Each seed simulates a canary stage on the clock of its bars: `k` instruments, one new paired outcome per instrument
per bar (hourly bars: `k` outcomes an hour). Next-bar returns carry a small planted edge, `ret = vol * (rho * z +
sqrt(1 - rho^2) * e)`; a version's position is `sign(z + noise)`, its net return `position * ret - cost_bps * |Δ
position|` (the controller's backtest convention). The champion in shadow and the canary see the same bars, so the
paired differences are what `autotrader.deploy.sequential.judge_pnl` — the very function the controller calls at
every analysis — judges, with the settings' `[canary] max_sharpe_drop`, `[deploy] pnl_alpha` and `[deploy]
min_signals`. The check runs after every new bar (a confidence sequence may be looked at any time); the first
`fail` is a rollback, the first `pass` a promotion, neither within the horizon leaves the stage inconclusive (held,
then `[deploy] on_inconclusive`).

Scenarios (the truth is known, so every outcome is right or wrong):

- `equal`: the canary has the champion's skill (its own noise draw): a rollback is a false rollback;
- `better`: the canary's signal is less noisy: a rollback is false, a promotion right;
- `inverted`: the canary's positions are the champion's negated: it must be rolled back;
- `cost x2`: the canary holds the same positions but pays twice the costs: it must be rolled back.

    python benchmarks/rollout.py                 # 40 seeds, k = 2, 5, 10, max_sharpe_drop 0.2 and 1.0
    python benchmarks/rollout.py --seeds 10      # quicker

This measures the P&L judge on simulated bars, not the controller loop (errors, latency and parity are judged on
their own checks; tests/test_deploy.py runs the controller on the manual clock).
"""

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autotrader.config import load_settings  # noqa: E402
from autotrader.deploy.sequential import judge_pnl  # noqa: E402

SCENARIOS = ('equal', 'better', 'inverted', 'cost x2')
EXPECT = {'equal': 'not fail', 'better': 'pass', 'inverted': 'fail', 'cost x2': 'fail'}


def simulate(seed, k, bars, vol, rho, noise, cost_bps, scenario):
    "Paired net returns (instrument, bar) of the champion ('base') and the canary ('new') for one seed."
    r = np.random.default_rng(seed)
    z = r.standard_normal((bars, k))
    ret = vol * (rho * z + math.sqrt(1 - rho**2) * r.standard_normal((bars, k)))
    base = np.sign(z + noise * r.standard_normal((bars, k)))
    if scenario == 'equal':
        new = np.sign(z + noise * r.standard_normal((bars, k)))
    elif scenario == 'better':
        new = np.sign(z + noise / 3 * r.standard_normal((bars, k)))
    elif scenario == 'inverted':
        new = -base
    else:
        new = base.copy()
    c = cost_bps * 1e-4

    def net(pos, cost):
        turn = np.abs(np.diff(pos, axis=0, prepend=pos[:1]))
        return pos * ret - cost * turn

    nb, nn = net(base, c), net(new, 2 * c if scenario == 'cost x2' else c)
    return nb, nn


def first_verdict(nb, nn, max_drop, alpha, min_n, every):
    "(verdict, paired outcomes at the verdict) of the sequential check run after every `every` bars."
    bars, k = nb.shape
    base, new = nb.ravel(), nn.ravel()  # bar-major: the first n*k values are the first n bars
    for t in range(every, bars + 1, every):
        n = t * k
        if n < min_n:
            continue
        p = pd.DataFrame({'base': base[:n], 'new': new[:n]})
        p['diff'] = p['new'] - p['base']
        v = judge_pnl(p, max_drop, alpha, min_n)['verdict']
        if v in ('pass', 'fail'):
            return v, t
    return 'inconclusive', bars


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seeds', type=int, default=40)
    ap.add_argument('--bars', type=int, default=24 * 14, help='horizon of a stage in bars (default: 14 days of 1h)')
    ap.add_argument('--instruments', default='2,5,10', help='instruments on the canary (k), comma-separated')
    ap.add_argument('--drops', default='', help='max_sharpe_drop values (default: the settings value and 1.0)')
    ap.add_argument('--vol', type=float, default=0.01, help='per-bar return volatility (1 %% ~ hourly crypto)')
    ap.add_argument('--rho', type=float, default=0.05, help='correlation of the latent signal with the next return')
    ap.add_argument('--noise', type=float, default=1.0, help="sd of a version's noise on the latent signal")
    ap.add_argument('--every', type=int, default=1, help='bars between analyses (a new outcome per bar)')
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:  # the embedded defaults: no settings.ini, no AUTOTRADER__ variables
        (Path(d) / 'settings.ini').write_text('')
        st = load_settings(Path(d) / 'settings.ini', env={})
    alpha, min_n, cost = st.deploy.pnl_alpha, st.deploy.min_signals, st.train.cost_bps
    drops = [float(x) for x in a.drops.split(',') if x] or sorted({st.canary.max_sharpe_drop, 1.0})
    ks = [int(x) for x in a.instruments.split(',')]
    print(
        f"P&L judge: alpha {alpha}, min_signals {min_n}, cost {cost} bp, vol {a.vol:.2%}/bar, rho {a.rho}, "
        f"noise {a.noise}; horizon {a.bars} bars; {a.seeds} seeds; analysis every {a.every} bar(s)"
    )
    rows, t0 = [], time.perf_counter()
    for drop in drops:
        for k in ks:
            for sc in SCENARIOS:
                res = [
                    first_verdict(*simulate(s, k, a.bars, a.vol, a.rho, a.noise, cost, sc), drop, alpha, min_n, a.every)
                    for s in range(a.seeds)
                ]
                v = pd.Series([x[0] for x in res])
                at = pd.Series([x[1] for x in res])
                rows.append(
                    dict(
                        max_drop=drop,
                        k=k,
                        scenario=sc,
                        rolled_back=f"{(v == 'fail').mean():.0%}",
                        promoted=f"{(v == 'pass').mean():.0%}",
                        inconclusive=f"{(v == 'inconclusive').mean():.0%}",
                        bars_to_rollback=at[v == 'fail'].median() if (v == 'fail').any() else None,
                        bars_to_promote=at[v == 'pass'].median() if (v == 'pass').any() else None,
                        expected=EXPECT[sc],
                    )
                )
    t = pd.DataFrame(rows)
    for c in ('bars_to_rollback', 'bars_to_promote'):
        t[c] = t[c].map(lambda x: '—' if x is None or pd.isna(x) else f"{x:.0f}")
    print(t.to_string(index=False))
    print(f"({time.perf_counter() - t0:.1f} s; bars are hours for 1h bars; medians over the seeds that concluded)")


if __name__ == '__main__':
    main()
