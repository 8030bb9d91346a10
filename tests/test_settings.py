"Settings: the shipped settings.ini, environment overrides, clear errors, secrets only from the environment."

from pathlib import Path
import pytest
from autotrader.config import SCHEMA, SettingsError, load_settings, settings_template
from inprocess import autotrader_cli

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd):
    return autotrader_cli(*args, cwd=cwd)


def test_shipped_settings_document_every_key():
    text = (ROOT / 'settings.ini').read_text()
    assert text.rstrip() == settings_template().rstrip(), (
        "settings.ini drifted from the schema: regenerate with `autotrader settings template`"
    )
    st = load_settings(ROOT / 'settings.ini', env={})
    for s, keys in SCHEMA.items():
        for k, spec in keys.items():
            assert f"\n{k} =" in text and spec.doc in text, f"[{s}] {k} is not documented"
            if spec.type not in ('path',):
                assert getattr(getattr(st, s), k) == load_settings(env={}).get(s, k)


def test_env_override_and_types(tmp_path):
    p = tmp_path / 'settings.ini'
    p.write_text('[data]\ntimeframe = 15m\n')
    st = load_settings(p, env={'AUTOTRADER__DATA__LOOKBACK_DAYS': '3', 'AUTOTRADER__SIM__ALPHA': '0'})
    assert (st.data.timeframe, st.data.lookback_days, st.sim.alpha) == ('15m', 3, 0.0)
    assert st.data.dir == tmp_path / 'autotrader-data'  # relative to the settings file


@pytest.mark.parametrize(
    'text,env,needle',
    [
        ('[data]\ntimefram = 1h\n', {}, 'unknown key [data] timefram'),
        ('[dat]\ntimeframe = 1h\n', {}, 'unknown section [dat]'),
        ('[data]\nlookback_days = ten\n', {}, "[data] lookback_days (from settings.ini): 'ten' is not a valid int"),
        ('[data]\ntimeframe = 2h\n', {}, 'not one of 1m, 5m'),
        ('[archive]\nbackend = s3\n', {}, '[archive] bucket: required'),
        ('[data]\napi_key = abc\n', {}, 'looks like a secret'),
        ('', {'AUTOTRADER__SIM__SEED': 'x'}, 'AUTOTRADER__SIM__SEED'),
        ('', {'AUTOTRADER__NOPE__X': '1'}, 'unknown section [nope]'),
        ('[data\n', {}, 'settings.ini'),
    ],
)
def test_bad_settings_name_the_key(tmp_path, text, env, needle):
    p = tmp_path / 'settings.ini'
    p.write_text(text)
    with pytest.raises(SettingsError) as e:
        load_settings(p, env=env)
    assert needle in str(e.value)


def test_cli_settings_check_exit_codes(tmp_path):
    (tmp_path / 'settings.ini').write_text('[data]\nlookback_days = ten\n')
    r = cli('settings', 'check', cwd=tmp_path)
    assert r.returncode == 2 and '[data] lookback_days' in r.stderr and 'Traceback' not in r.stderr
    (tmp_path / 'settings.ini').write_text('[data]\nlookback_days = 3\n')
    r = cli('settings', 'check', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli('settings', 'show', cwd=tmp_path)
    assert 'lookback_days = 3' in r.stdout
