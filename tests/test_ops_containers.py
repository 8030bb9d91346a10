"The Dockerfile and the local-stack compose file (no Docker engine here): the image's build context really builds the package, the image runs as non-root with a /readyz health check, and the compose stack mounts files that exist and runs commands the CLI accepts."

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from autotrader.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / 'Dockerfile').read_text()
COMPOSE = ROOT / 'ops' / 'docker' / 'compose.yaml'


def test_dockerfile_non_root_with_liveness_healthcheck_and_pinned_dependencies():
    users = re.findall(r'^USER\s+(\S+)', DOCKERFILE, re.M)
    assert users and users[-1].split(':')[0] not in ('root', '0'), 'the final stage must run as a non-root user'
    hc = re.search(r'^HEALTHCHECK\s.*?(?=^\S)', DOCKERFILE, re.M | re.S).group(0)
    assert '/healthz' in hc and '/readyz' not in hc and '--start-period' in hc  # liveness: a fresh gateway is not ready
    assert re.search(r'^RUN pip install -c /tmp/constraints.txt /wheels/\*\.whl', DOCKERFILE, re.M)
    assert (ROOT / 'constraints.txt').is_file() and 'constraints.txt' not in (
        ROOT / '.dockerignore'
    ).read_text().split()
    assert re.search(r'^CMD \["autotrader", "serve"\]', DOCKERFILE, re.M)
    # no secret as a build argument (it would stay in the image's history): the only one is the base image's digest
    assert re.findall(r'^ARG (\w+)', DOCKERFILE, re.M) == ['PYTHON_IMAGE'], 'no secrets in the image'
    assert not re.search(r'(?i)(password|token|secret)\s*=', DOCKERFILE), 'no secrets in the image'


def test_the_build_context_builds_the_package_with_its_pipelines(tmp_path):
    "Copy exactly what the build stage COPYs, build the wheel as the Dockerfile does, and look inside it."
    build = DOCKERFILE.split('FROM ')[1]
    copies = re.findall(r'^COPY\s+(?!--)(.+?)\s+(\S+)$', build, re.M)
    assert copies
    for srcs, dest in copies:
        for s in srcs.split():
            src, dst = ROOT / s, tmp_path / (s if dest.startswith('./') and dest != './' else Path(s).name)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
            else:
                shutil.copy(src, dst)
    r = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', str(tmp_path / 'w'), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = next((tmp_path / 'w').glob('autotrader-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    assert 'autotrader/cli.py' in names and 'autotrader/ops/recovery.py' in names
    assert {'autotrader/notebooks/ingest.ipynb', 'autotrader/notebooks/health.ipynb'} <= set(
        names
    )  # the pipeline notebooks, packaged


def test_dockerignore_keeps_state_and_secrets_out():
    ignored = (ROOT / '.dockerignore').read_text().split()
    for p in ('.git', '.venv', 'autotrader-data', 'reports'):
        assert p in ignored


def test_compose_stack_is_complete_and_consistent():
    c = yaml.safe_load(COMPOSE.read_text())
    services = c['services']
    assert {'minio', 'postgres', 'mlflow', 'gateway', 'runner', 'prometheus', 'grafana', 'node-exporter'} <= set(
        services
    )
    for name, s in services.items():
        for v in s.get('volumes', []):
            src = v.split(':')[0]
            if src.startswith('.'):
                assert (COMPOSE.parent / src).exists(), f'{name}: mounts {src}, which does not exist'
        for p in s.get('ports', []):
            assert str(p).startswith('127.0.0.1:'), f'{name}: port {p} must bind 127.0.0.1'
        cmd = s.get('command')
        if isinstance(cmd, list) and cmd[0] == 'autotrader':
            _parser().parse_args(cmd[1:])  # SystemExit (test error) if not accepted
        env = s.get('environment') or {}
        for k, v in env.items():
            if re.search(r'(?i)password|secret', k):
                assert str(v).startswith('${'), f'{name}: {k} must come from the environment'
    assert services['gateway']['ports'] == ['127.0.0.1:8080:8080']
    mounts = ' '.join(services['prometheus']['volumes'] + services['grafana']['volumes'])
    assert '../prometheus/autotrader-rules.yml' in mounts and '../grafana:' in mounts
    prom = yaml.safe_load((COMPOSE.parent / 'prometheus.yml').read_text())
    assert prom['rule_files'] == ['/etc/prometheus/autotrader-rules.yml']
    env = services['gateway']['environment']
    from autotrader.config import SCHEMA

    for k in env:
        m = re.match(r'AUTOTRADER__([A-Z0-9_]+?)__([A-Z0-9_]+)$', k)
        if m:
            assert m.group(2).lower() in SCHEMA[m.group(1).lower()], k
