"""Incident drills on the production intervals: the local stack (`autotrader stack up`) with the shipped configuration
as it is — 15 s scrape and evaluation intervals, the rules' `for` durations, Alertmanager's 10 s group_wait and 1 min
group_interval — and every drill of `autotrader drill list`; MTTD and MTTR per drill, the median of 3 runs where a
drill takes under 10 minutes.

    python benchmarks/drills.py                        # every drill, median of 3 (about 40 min)
    python benchmarks/drills.py --runs 1 collector-down pipeline-failed
    python benchmarks/drills.py --json drills.json     # also the raw results

The data folder is a fresh temporary one: 20 days of sim bars of one instrument (basic features) ingested by the
runner (so the pipeline's metrics file exists) and a health run (its metrics file). Without a deployed model the
gateway answers not ready, so `gateway-down` and `state-db-unreachable` (whose alert, AutoTraderGatewayNotReady, then
already fires) and `bad-canary` (a copy of the champion) are left out unless --with-model trains and promotes one first
(4 instruments, 150 days; a few minutes more); so is `drift-planted` (20 days give the drift check too short a
reference: inconclusive, nothing to detect)."""

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path


def setup(d: Path, with_model: bool):
    from autotrader.config import load_settings
    from autotrader.ops.runner import run_pipeline

    (d / 'settings.ini').write_text(
        textwrap.dedent("""\
        [data]
        dir = data
        lookback_days = 20
        [instruments]
        symbols = BTC-USD:crypto
        [features]
        set = basic
        """)
    )
    if with_model:  # 4 instruments, a stronger edge (the tests' champion): a model that passes the gates, served
        (d / 'settings.ini').write_text(
            textwrap.dedent("""\
            [data]
            dir = data
            lookback_days = 150
            [instruments]
            symbols = BTC-USD, ETH-USD, SOL-USD, ADA-USD
            [sim]
            alpha = 0.6
            [train]
            cv_folds = 3
            n_trials = 3
            """)
        )
    os.chdir(d)
    st = load_settings(d / 'settings.ini', env={})
    r = run_pipeline('ingest', {}, settings_path=st._file, progress=False)
    assert r.status == 'ok', r.error
    if with_model:
        from autotrader.pipelines.evaluate import evaluate_version
        from autotrader.pipelines.train import train
        from autotrader.train.core import apply_decision

        res = train(st)
        ev = evaluate_version(st, res.version)
        assert ev.promote, ev.decision['reasons']
        apply_decision(st, res.version)  # alias champion: the gateway serves it
    from autotrader.pipelines.health import run_health

    run_health(st)
    return st


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        'drills',
        nargs='*',
        help='drill names (default: all but those needing a model without --with-model)',
    )
    ap.add_argument(
        '--runs', type=int, default=3, help='runs of a drill under 10 min (default 3; the median is reported)'
    )
    ap.add_argument('--json', metavar='FILE', help='write every result as JSON')
    ap.add_argument(
        '--with-model',
        action='store_true',
        help='train and promote a model first, so the gateway is ready and gateway-down, state-db-unreachable, '
        'bad-canary and drift-planted can run',
    )
    a = ap.parse_args()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the stack on the way out (finally)
    from autotrader.ops import stack as K, drills as D

    needs_model = ('gateway-down', 'state-db-unreachable', 'bad-canary', 'drift-planted')
    names = a.drills or [n for n in D.DRILLS if n not in needs_model or a.with_model]
    D.drill_names(names)
    d = Path(tempfile.mkdtemp(prefix='autotrader-drills-'))
    t = time.monotonic()
    st = setup(d, a.with_model)
    print(f'data ready in {time.monotonic() - t:.0f} s ({d})', flush=True)
    results, rows = {}, []
    # the gateway's admin token (the bad canary's integration check uses it): generated for this run unless set
    os.environ.setdefault('AUTOTRADER_ADMIN_TOKEN', secrets.token_hex(16))
    try:
        K.stack_up(
            st,
            K.StackOptions(
                replicas=2,
                ports={
                    k: K.free_port() for k in ('receiver', 'alertmanager', 'node-exporter', 'gateway', 'prometheus')
                },
            ),
        )
        for name in names:
            runs = []
            while len(runs) < a.runs:
                r = D.run_drill(D.DRILLS[name], st, log=lambda *x: print(*x, flush=True))
                runs.append(r)
                if not (r.detected and r.recovered) or (r.mttr_s or 0) >= 600:
                    break
            results[name] = runs
            ok = [r for r in runs if r.detected]
            med = lambda k: (
                statistics.median([getattr(r, k) for r in ok if getattr(r, k) is not None])
                if [r for r in ok if getattr(r, k) is not None]
                else None
            )
            rep = D.DrillResult(
                name,
                bool(ok) and len(ok) == len(runs),
                med('mttd_s'),
                med('mttr_s'),
                runs[0].alert,
                runs[0].runbook,
                all(r.recovered for r in runs),
                simulated_s=runs[0].simulated_s,
                recovery=runs[0].recovery,
            )
            rows.append((rep, len(runs)))
            print(D.format_table([rep]), flush=True)
    finally:
        K.stack_down(st, log=lambda *x: None)
    print(f'\nDrills on the production intervals (median of the runs shown), {time.monotonic() - t:.0f} s in all:')
    print(D.format_table([r for r, _ in rows]))
    print('runs: ' + ', '.join(f'{r.drill} {n}' for r, n in rows))
    for r, _ in rows:
        mttd_real = (r.mttd_s or 0) + r.simulated_s
        target = 300 if r.recovery == 'automatic' else 1800
        if not r.detected:
            print(f'FINDING {r.drill}: not detected')
        elif mttd_real >= 300:
            print(
                f'FINDING {r.drill}: MTTD {mttd_real:.0f} s (with the simulated {r.simulated_s:.0f} s) above the 5 min target'
            )
        if r.mttr_s is not None and r.mttr_s >= target:
            print(f'FINDING {r.drill}: MTTR {r.mttr_s:.0f} s above the {target // 60} min target')
    if a.json:
        Path(a.json).write_text(json.dumps({k: [r.to_dict() for r in v] for k, v in results.items()}, indent=2))


if __name__ == '__main__':
    main()
