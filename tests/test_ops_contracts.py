"""Contracts between the infrastructure (ops/terraform, Dockerfile) and the application, checked in CI without a
cloud: every secret and AUTOTRADER_* variable the library reads is provided to the containers that read it; every
health-check path exists in the gateway with the meaning the infrastructure gives it (a real gateway answers);
the Airflow that Terraform deploys satisfies what the exported DAGs import; every runbook an alarm names exists; the
Terraform version required covers the language features used; production evaluates the project's own rules; the
image's constraints pin every runtime dependency; every image is pinned by digest; traffic inside the VPC is
encrypted (HTTPS target groups, containers serving TLS, the health checks speaking it) and MLflow needs a user."""

import json
import os
import re
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from local_servers import free_port

ROOT = Path(__file__).resolve().parents[1]
TF = ROOT / 'ops' / 'terraform'
STACK = (TF / 'modules' / 'autotrader' / 'main.tf').read_text()
LIBRARY = {p: p.read_text() for p in (ROOT / 'autotrader').rglob('*.py') if p.name != '_modidx.py'}

# AUTOTRADER_* variables the library reads that the containers do not need, and why
NOT_PROVISIONED = {
    'AUTOTRADER_SETTINGS': 'the containers get their settings as AUTOTRADER__SECTION__KEY variables, not a settings file',
    'AUTOTRADER_GATEWAY_URL': 'set by `autotrader serve` for its own worker processes',
    'AUTOTRADER_GATEWAY_PORT': 'set by `autotrader serve` for its own worker processes',
    'AUTOTRADER_HOME': 'Airflow workers in [airflow] run_with = command; production runs the DAG tasks as ECS tasks',
    'AUTOTRADER_OPS_DIR': 'the local operations stack (autotrader.ops.stack: Prometheus, Alertmanager on one machine); production monitoring is AMP',
}
AWS_CREDENTIALS = {'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'}  # the task roles give the containers credentials


def _module(name: str) -> str:
    "The text of `module \"name\" { … }` in the composition."
    start = STACK.index(f'module "{name}" {{')
    nxt = STACK.find('\nmodule "', start + 1)
    return STACK[start : nxt if nxt > 0 else None]


def _secret_names() -> set:
    return set(re.findall(r'"(AUTOTRADER_[A-Z_]+)"', (TF / 'modules' / 'secrets' / 'variables.tf').read_text()))


def _provided(component: str) -> set:
    "Environment variables (settings and secrets) the composition gives `component`'s container."
    text = _module(component)
    names = set(re.findall(r'\b([A-Z][A-Z0-9_]{2,})\s*=', text))
    picked = re.findall(r'local\.app_secrets\["([A-Z_]+)"\]', text)
    if picked:
        names |= set(picked)
    elif 'local.app_secrets' in text:
        names |= _secret_names()
    if 'local.db_password' in text:
        names.add('PGPASSWORD')
    if 'local.common_env' in text:
        common = STACK[STACK.index('common_env = {') : STACK.index('db_password =')]
        names |= set(re.findall(r'\b([A-Z][A-Z0-9_]{2,})\s*=', common))
    return names


def _read_by(paths) -> set:
    "AUTOTRADER_* variables (not AUTOTRADER__SECTION__KEY) and secrets the given library files read."
    from autotrader.config import SECRETS

    out = set()
    for p in paths:
        text = LIBRARY[p]
        out |= set(re.findall(r'\b(AUTOTRADER_[A-Z][A-Z0-9_]*[A-Z0-9])\b', text))
        out |= {SECRETS[k] for k in re.findall(r"\bsecret\(\s*'([a-z_]+)'", text) if k in SECRETS}
    return out


def test_every_secret_and_variable_the_library_reads_is_provisioned():
    from autotrader.config import SECRETS

    everything = _read_by(LIBRARY) | set(SECRETS.values())
    assert {'AUTOTRADER_ADMIN_TOKEN', 'AUTOTRADER_OANDA_TOKEN', 'AUTOTRADER_SLACK_WEBHOOK_URL'} <= everything
    # the runner's task definition runs every pipeline (embedded scheduler and the Airflow DAGs' ECS tasks) and the
    # deploy commands: it must get every secret and variable the library reads
    runner = _provided('runner')
    missing = sorted(everything - runner - set(NOT_PROVISIONED) - AWS_CREDENTIALS)
    assert not missing, (
        f'read by the library, not given to the runner (ops/terraform/modules/autotrader/main.tf): {missing}'
    )
    # the gateway process reads what autotrader/deploy/gateway.py (and what it imports) reads
    gateway_files = [p for p in LIBRARY if p.parent.name == 'deploy' or p.name in ('config.py', 'cli.py')]
    needed = {
        n
        for n in _read_by(p for p in gateway_files if 'secret(' in LIBRARY[p] or 'AUTOTRADER_' in LIBRARY[p])
        if n.startswith('AUTOTRADER_ADMIN')
    }
    assert needed and needed <= _provided('gateway'), (needed, _provided('gateway'))
    # every exemption is still read (a stale one would hide nothing) … and every secret name Terraform creates is one the kit reads
    assert set(NOT_PROVISIONED) <= everything
    assert _secret_names() <= set(SECRETS.values()) and _secret_names() == set(SECRETS.values()) - AWS_CREDENTIALS
    # credentials come from the task roles; the database password of the application role (not the master) from a secret
    for c in ('gateway', 'mlflow', 'runner'):
        text = _module(c)
        assert 'task_policy_statements' in text
        assert 'PGPASSWORD' in _provided(c), c
    assert 'db_password = { PGPASSWORD = "${module.database.app_secret_arn}:password::" }' in STACK
    assert 'master_secret_arn' not in _module('gateway') + _module('mlflow') + _module('runner')


def test_airflow_home_is_what_the_exported_dags_read():
    "AUTOTRADER_HOME (exempt above) is the variable the command-mode DAG files read, and AUTOTRADER_SETTINGS the fallback."
    from autotrader.ops.airflow_dags import PRELUDE

    assert '"$AUTOTRADER_HOME"' in PRELUDE and '"$AUTOTRADER_SETTINGS"' in PRELUDE


# ---------------------------------------------------------------- health checks


UNVERIFIED = ssl._create_unverified_context()  # as the load balancer: it does not verify its targets' certificates


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5, context=UNVERIFIED) as r:
            return r.status, json.loads(r.read() or b'null')
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'null')


@pytest.fixture(scope='module')
def fresh_gateway(tmp_path_factory):
    "`autotrader serve` on a free port with nothing deployed (embedded defaults, an empty data folder), TLS as in production."
    d = tmp_path_factory.mktemp('gateway')
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith('AUTOTRADER')}
    tls = re.search(r'AUTOTRADER__DEPLOY__TLS_SELF_SIGNED = "(\w+)"', _module('gateway'))
    assert tls and tls.group(1) == 'true', 'the gateway task no longer serves TLS'
    env['AUTOTRADER__DEPLOY__TLS_SELF_SIGNED'] = tls.group(1)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))
    p = subprocess.Popen(
        [sys.executable, '-m', 'autotrader.cli', 'serve', '--host', '127.0.0.1', '--port', str(port)],
        cwd=d,
        env=env,
        stdout=open(d / 'serve.log', 'w'),
        stderr=subprocess.STDOUT,
    )
    url = f'https://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert p.poll() is None, (d / 'serve.log').read_text()[-3000:]
            try:
                if _get(f'{url}/healthz')[0] == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        yield url
    finally:
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _container_check_paths() -> dict:
    df = (ROOT / 'Dockerfile').read_text()
    hc = re.search(r'^HEALTHCHECK\s.*?(?=^\S)', df, re.M | re.S).group(0)
    cmd = re.search(
        r'health_check_command\s*=\s*\[.*format\(local\.https_check, 8080, "(/\w+)"\)\]', _module('gateway')
    )
    return {
        'Dockerfile HEALTHCHECK': re.search(r"127\.0\.0\.1:%s(/\w+)", hc).group(1),
        'ECS container health check': cmd.group(1),
    }


def _health_check_code(component: str, port: int) -> str:
    "The Python the ECS container health check of `component` runs, for a server on `port`."
    fmt = re.search(r'https_check = "(.*)"\n', STACK).group(1).encode().decode('unicode_escape')
    m = re.search(r'health_check_command\s*=\s*\[.*format\(local\.https_check, (\d+), "(/\w+)"\)\]', _module(component))
    return fmt % (port, m.group(2))


def test_health_check_paths_exist_in_the_gateway_with_the_meaning_the_infrastructure_gives_them(fresh_gateway):
    gateway_py = (ROOT / 'autotrader' / 'deploy' / 'gateway.py').read_text()
    routes = set(re.findall(r"Route\('(/[a-z]+)'", gateway_py))
    readiness = re.search(r'readiness_path\s*=\s*"([^"]+)"', _module('gateway')).group(1)
    liveness = _container_check_paths()
    assert {readiness, *liveness.values()} <= routes, (routes, readiness, liveness)
    # a container check replaces the container when it fails: it must pass on a gateway that is merely alive (nothing
    # deployed yet), or ECS would kill every fresh gateway before a version can be deployed
    for where, path in liveness.items():
        code, body = _get(fresh_gateway + path)
        assert code == 200, f'{where} uses {path}, which a fresh gateway answers {code} {body}'
    # the load balancer's check decides where traffic goes: it must fail while no version is deployed and loaded
    code, body = _get(fresh_gateway + readiness)
    assert code == 503 and body['ready'] is False, (readiness, code, body)
    # the ECS health check, as written in Terraform, passes on that gateway (HTTPS); the Dockerfile's too, in the task's environment
    port = int(fresh_gateway.rsplit(':', 1)[1])
    r = subprocess.run(
        [sys.executable, '-c', _health_check_code('gateway', port)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    df = (ROOT / 'Dockerfile').read_text()
    docker_check = json.loads(re.search(r'^HEALTHCHECK\s.*?CMD (\[.*?\])$', df, re.M | re.S).group(1))
    env = {**os.environ, 'AUTOTRADER__DEPLOY__PORT': str(port), 'AUTOTRADER__DEPLOY__TLS_SELF_SIGNED': 'true'}
    r = subprocess.run(
        [sys.executable if a == 'python' else a for a in docker_check],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    # … and ECS must not replace a task for failing it (max grace period), or the fresh gateway dies anyway
    assert 'elb_replaces_tasks' not in _module('gateway')
    assert re.search(
        r'default\s*=\s*false',
        (TF / 'modules' / 'service' / 'variables.tf')
        .read_text()
        .split('variable "elb_replaces_tasks"')[1]
        .split('}')[0],
    )


# ---------------------------------------------------------------- Airflow


def test_the_deployed_airflow_satisfies_what_the_exported_dags_import(tmp_path):
    from autotrader.config import SCHEMA, load_settings
    from autotrader.ops.airflow_dags import AIRFLOW_REQUIRES, export_airflow

    var = (
        (TF / 'modules' / 'airflow' / 'variables.tf').read_text().split('variable "airflow_version"')[1].split('\n}')[0]
    )
    deployed = tuple(int(x) for x in re.search(r'default\s*=\s*"([\d.]+)"', var).group(1).split('.'))
    assert deployed[:2] >= AIRFLOW_REQUIRES, (deployed, AIRFLOW_REQUIRES)
    assert 'tonumber(split(".", var.airflow_version)[0]) >= 3' in var  # a 2.x version is refused at plan time
    airflow_mod = _module('airflow')
    assert 'airflow_version' not in airflow_mod or 'airflow_version = "3' in airflow_mod

    # the settings Terraform hands to the export are real keys, and enough for run_with = ecs
    out = (TF / 'modules' / 'autotrader' / 'outputs.tf').read_text().split('output "airflow_settings"')[1]
    keys = dict(re.findall(r'AUTOTRADER__AIRFLOW__([A-Z_]+)\s*=\s*(.+)', out))
    assert keys['RUN_WITH'].strip() == '"ecs"'
    for k in keys:
        assert k.lower() in SCHEMA['airflow'], k
    env = {f'AUTOTRADER__AIRFLOW__{k}': f'x-{k.lower()}' for k in keys}
    env['AUTOTRADER__AIRFLOW__RUN_WITH'] = 'ecs'
    files = export_airflow(tmp_path, load_settings(env=env))
    imports = set()
    for f in files:
        imports |= set(re.findall(r'^\s*from (airflow[\w.]*) import', f.read_text(), re.M))
    # airflow.sdk (3.0+), the standard provider (bundled with Airflow 3) and the Amazon provider (MWAA installs it)
    assert {
        'airflow.sdk',
        'airflow.providers.standard.operators.python',
        'airflow.providers.amazon.aws.operators.ecs',
    } <= imports
    assert all(
        i.startswith(('airflow.sdk', 'airflow.providers.standard.', 'airflow.providers.amazon.', 'airflow.timetables.'))
        for i in imports
    ), imports
    # the role MWAA runs them with may start that task definition and pass both of its roles
    main = (TF / 'modules' / 'airflow' / 'main.tf').read_text()
    assert (
        'task-definition/${var.task_definition_family}:*' in main
        and '"iam:PassRole"' in main
        and 'Resource  = var.task_role_arns' in main
    )
    assert 'task_role_arns         = [module.runner.task_role_arn, module.runner.execution_role_arn]' in airflow_mod
    # and the Airflow CI installs (tests/test_airflow.py) satisfies them too
    af = ROOT / '.venv-airflow' / 'bin' / 'python'
    if af.exists():
        r = subprocess.run(
            [str(af), '-c', 'import airflow; print(airflow.__version__)'], capture_output=True, text=True, timeout=120
        )
        assert tuple(int(x) for x in r.stdout.strip().split('.')[:2]) >= AIRFLOW_REQUIRES, r.stdout + r.stderr


# ---------------------------------------------------------------- runbooks, Terraform version, monitoring, image


def test_every_runbook_an_alarm_names_exists():
    alarms = (TF / 'modules' / 'alarms' / 'main.tf').read_text()
    names = re.findall(r'^\s{4}([a-z0-9-]+) = \{', alarms, re.M)
    runbooks = re.findall(r'runbook\s*=\s*"([^"]+)"', alarms)
    assert len(names) >= 6 and len(runbooks) == len(names), (names, runbooks)
    for rb in runbooks:
        assert (ROOT / rb).is_file(), f'an alarm names {rb}, which does not exist'
    assert '"${each.value.description}. Runbook: ${each.value.runbook}"' in alarms
    # quiet on clean traffic: a minute without 5xx answers publishes no data point
    block = alarms[alarms.index('gateway-5xx = {') :]
    assert re.search(r'missing = "notBreaching"', block.split('}')[0])
    assert 'treat_missing_data  = each.value.missing' in alarms


FEATURES = {  # language feature in a .tf file → the Terraform version that introduced it
    r'use_lockfile\s*=': (1, 10),
    r'provider::': (1, 8),
    r'^\s*removed\s*\{': (1, 7),
    r'^\s*import\s*\{': (1, 5),
    r'^\s*check\s*"': (1, 5),
    r'optional\(': (1, 3),
    r'^\s*moved\s*\{': (1, 1),
    r'configuration_aliases': (0, 15),
}


def test_required_version_covers_the_features_used():
    text = '\n'.join(p.read_text() for p in TF.rglob('*.tf'))
    need = max((v for pat, v in FEATURES.items() if re.search(pat, text, re.M)), default=(0, 0))
    assert need >= (1, 10)  # use_lockfile is used
    for env in ('staging', 'production'):
        v = (TF / 'environments' / env / 'versions.tf').read_text()
        have = tuple(int(x) for x in re.search(r'required_version\s*=\s*">=\s*([\d.]+)"', v).group(1).split('.')[:2])
        assert have >= need, f'{env}: required_version >= {have} but the files use features of Terraform {need}'


def test_production_evaluates_the_projects_prometheus_rules():
    mon = (TF / 'modules' / 'monitoring' / 'main.tf').read_text()
    assert 'file("${path.module}/../../../prometheus/autotrader-rules.yml")' in _module('monitoring')
    rules = (ROOT / 'ops' / 'prometheus' / 'autotrader-rules.yml').read_text()
    dropped = '\n          or absent(up{job="alertmanager"})'
    assert dropped in rules, (
        'the monitoring module drops this line from the rules for AMP: update it with the rule file'
    )
    jobs = set(re.findall(r'job="([a-z_-]+)"', rules)) - {'alertmanager'}
    scraped = set(re.findall(r'job_name\s*=\s*"([a-z_-]+)"', mon))
    assert jobs <= scraped, f'jobs the rules select but the production collector does not scrape: {jobs - scraped}'
    assert 'aws_prometheus_rule_group_namespace' in mon and 'sns_configs' in mon and '--agent' in mon
    assert 'service_discovery_arn  = module.monitoring.gateway_discovery_arn' in _module('gateway')


def test_the_image_constraints_pin_every_runtime_dependency():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    deps = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['dependencies']
    pins = dict(
        l.split('==') for l in (ROOT / 'constraints.txt').read_text().split('\n') if '==' in l and not l.startswith('#')
    )
    pins = {canonicalize_name(k): v for k, v in pins.items()}
    missing = [d for d in deps if canonicalize_name(Requirement(d).name) not in pins]
    assert not missing, f'not pinned in constraints.txt (regenerate it, see its header): {missing}'
    for d in deps:
        r = Requirement(d)
        assert r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True), (
            d,
            pins[canonicalize_name(r.name)],
        )


# ---------------------------------------------------------------- images, TLS inside the VPC, MLflow authentication

DIGEST = re.compile(r'@sha256:[0-9a-f]{64}$')


def test_every_image_is_pinned_by_digest():
    df = (ROOT / 'Dockerfile').read_text()
    base = re.search(r'^ARG PYTHON_IMAGE=(\S+)$', df, re.M).group(1)
    assert DIGEST.search(base), base
    froms = re.findall(r'^FROM (\S+)', df, re.M)
    assert froms and all(f == '${PYTHON_IMAGE}' for f in froms), froms
    compose = (ROOT / 'ops' / 'docker' / 'compose.yaml').read_text()
    images = re.findall(r'^\s+image:\s*(\S+)', compose, re.M)
    built = {'autotrader:dev'}  # built from the Dockerfile by the compose file itself
    assert len(images) >= 6
    assert all(DIGEST.search(i) for i in images if i not in built), [
        i for i in images if i not in built and not DIGEST.search(i)
    ]
    defaults = []
    for f in TF.rglob('variables.tf'):
        for name, body in re.findall(r'variable "([a-z_]*image)" \{(.*?)\n\}', f.read_text(), re.S):
            d = re.search(r'default\s*=\s*"([^"]+)"', body)
            if d:
                defaults.append((f.parent.name, name, d.group(1)))
    assert len(defaults) >= 2 and all(DIGEST.search(d) for *_, d in defaults), defaults


def test_traffic_inside_the_vpc_is_encrypted():
    svc = (TF / 'modules' / 'service' / 'main.tf').read_text()
    tg = svc[svc.index('resource "aws_lb_target_group"') :].split('\n}\n')[0]
    assert 'protocol             = "HTTPS"' in tg and 'protocol            = "HTTPS"' in tg, tg
    every_tf = '\n'.join(p.read_text() for p in TF.rglob('*.tf'))
    assert 'CKV_AWS_378' not in every_tf  # fixed, not skipped
    # every container behind the load balancer serves TLS, and its health check speaks it
    balanced = [m for m in ('gateway', 'mlflow') if re.search(r'^\s+port\s+=\s+\d+', _module(m), re.M)]
    assert balanced == ['gateway', 'mlflow']
    assert 'AUTOTRADER__DEPLOY__TLS_SELF_SIGNED = "true"' in _module('gateway')
    assert '"--tls-self-signed"' in _module('mlflow') and '"autotrader", "tracking-server"' in _module('mlflow')
    for m in balanced:
        assert "https://127.0.0.1:" in _health_check_code(m, 1)
    # the collector scrapes the gateway over HTTPS; the database is reached with TLS
    mon = (TF / 'modules' / 'monitoring' / 'main.tf').read_text()
    assert re.search(r'job_name = "autotrader-gateway".*scheme = "https"', mon)
    assert 'PGSSLMODE                        = "require"' in STACK and 'sslmode=require' in _module('mlflow')


def test_mlflow_needs_a_user_and_every_client_has_one():
    from autotrader.tls import tracking_server_argv

    ml = _module('mlflow')
    assert '--no-auth' not in ml and '"--auth-db-uri"' in ml
    assert '--app-name' in tracking_server_argv('sqlite:///x.db')  # authentication is the default of the command
    auth_db = re.search(r'"--auth-db-uri", "[^"]*/(\w+)\?', ml).group(1)
    bootstrap = (TF / 'modules' / 'database' / 'bootstrap.py').read_text()
    assert f"'{auth_db}'" in bootstrap, f'the bootstrap task does not create the database {auth_db}'
    names = set(re.findall(r'"([A-Z_]+)"', (TF / 'modules' / 'secrets' / 'variables.tf').read_text()))
    assert {'MLFLOW_TRACKING_USERNAME', 'MLFLOW_TRACKING_PASSWORD', 'MLFLOW_FLASK_SERVER_SECRET_KEY'} <= names
    assert {'MLFLOW_AUTH_ADMIN_PASSWORD', 'MLFLOW_FLASK_SERVER_SECRET_KEY'} <= set(
        re.findall(r'(MLFLOW_[A-Z_]+)\s*=', STACK)
    )
    for client in ('gateway', 'runner'):  # they load and register models
        assert 'local.mlflow_client' in _module(client), client
    assert 'local.mlflow_server' in ml
