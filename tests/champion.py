"""One trained champion per test session: sim bars of four crypto instruments, ingested, trained, evaluated and promoted
once (the `champion` fixture in conftest.py), and copied where a test changes it (`champion_copy`, or `copy_champion`
for a module's own copy). Under pytest-xdist the workers share one build: the first to ask builds it under a file
lock, the others wait for it and read the same folder."""

import fcntl
import json
import shutil
import sqlite3
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

INSTRUMENTS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ADA-USD']
SETTINGS = textwrap.dedent(f"""\
    [instruments]
    symbols = {', '.join(INSTRUMENTS)}
    [data]
    end = 2025-01-01
    lookback_days = 150
    [sim]
    # a stronger edge than the demo's 0.3: a Sharpe comparison over a few dozen bars must tell an inverted model
    # from the champion (at 0.3 the champion itself loses over 20 two-instrument bars about one time in six)
    alpha = 0.6
    [train]
    cv_folds = 3
    n_trials = 3
    """)


@dataclass(frozen=True)
class Champion:
    """A folder with `settings.ini` (the settings above; no data.dir, so the data is `autotrader-data/` beside it):
    the ingested store and archive, the SQLite MLflow registry with version `version` trained, evaluated (decision
    file written, gates passed) and promoted (alias `champion`), the optuna study of its tuning."""

    dir: Path
    version: str
    instruments: tuple

    @property
    def settings_path(self) -> Path:
        return self.dir / 'settings.ini'

    @property
    def data_dir(self) -> Path:
        return self.dir / 'autotrader-data'

    @property
    def settings(self):
        "The folder's settings, hermetic (no AUTOTRADER_* from the environment)."
        from autotrader.config import load_settings

        return load_settings(self.settings_path, env={})


@contextmanager
def _locked(path: Path):
    with open(path, 'a+') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_champion(d: Path) -> Champion:
    "Ingest, train, evaluate and promote in the empty folder `d` (about a minute on a quiet machine)."
    from autotrader.config import load_settings
    from autotrader.pipelines.evaluate import evaluate_version
    from autotrader.pipelines.ingest import ingest
    from autotrader.pipelines.train import train
    from autotrader.train.core import apply_decision

    d.mkdir(parents=True, exist_ok=True)
    (d / 'settings.ini').write_text(SETTINGS)
    st = load_settings(d / 'settings.ini', env={})
    ingest(settings=st, progress=False)
    res = train(st)
    ev = evaluate_version(st, res.version)
    assert ev.promote, ev.decision['reasons']
    apply_decision(st, res.version)
    c = Champion(d, str(res.version), tuple(INSTRUMENTS))
    (d / 'champion.json').write_text(json.dumps({'version': c.version, 'instruments': list(c.instruments)}))
    return c


def shared_champion(root: Path) -> Champion:
    """The champion under `root/champion`, built by the first caller (any process) and reused by the others. A failed
    build is not retried by every test: its error is kept and raised again."""
    d, done, failed = root / 'champion', root / 'champion' / 'champion.json', root / 'champion-failed.txt'
    with _locked(root / 'champion.lock'):
        if failed.exists():
            raise RuntimeError(f'the session champion could not be built:\n{failed.read_text()}')
        if not done.exists():
            shutil.rmtree(d, ignore_errors=True)
            try:
                build_champion(d)
            except BaseException as e:
                import traceback

                failed.write_text(''.join(traceback.format_exception(e))[-6000:])
                raise
    meta = json.loads(done.read_text())
    return Champion(d, meta['version'], tuple(meta['instruments']))


def _repath_sqlite(db: Path, old: str, new: str):
    "Replace the folder `old` by `new` in every text column of an SQLite file (MLflow keeps absolute artifact paths)."
    con = sqlite3.connect(db)
    try:
        tables = [
            r[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        ]
        for t in tables:
            for col in [
                r[1]
                for r in con.execute(f'PRAGMA table_info("{t}")')
                if r[2].upper() in ('', 'TEXT') or 'CHAR' in r[2].upper()
            ]:
                con.execute(
                    f'UPDATE "{t}" SET "{col}" = replace("{col}", ?, ?) WHERE instr("{col}", ?) > 0', (old, new, old)
                )
        con.commit()
    finally:
        con.close()


def copy_champion(c: Champion, dst: Path) -> Champion:
    """A private copy of the champion's folder at `dst` (which must not exist yet), every absolute path inside it
    (MLflow's artifact locations in SQLite, paths in JSON records) pointing into the copy: a test may train, register,
    promote or roll out there without touching the shared one."""
    shutil.copytree(c.dir, dst, ignore=shutil.ignore_patterns('*.lock'))
    old, new = str(c.dir), str(dst)
    for p in dst.rglob('*'):
        if not p.is_file():
            continue
        if p.suffix == '.db':
            _repath_sqlite(p, old, new)
        elif p.suffix in ('.json', '.yaml', '.yml', '.ini', 'MLmodel') or p.name == 'MLmodel':
            text = p.read_text(errors='surrogateescape')
            if old in text:
                p.write_text(text.replace(old, new), errors='surrogateescape')
    return Champion(dst, c.version, c.instruments)
