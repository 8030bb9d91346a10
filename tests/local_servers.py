"Shared test helpers: a free loopback port, and a real `mlflow server` subprocess on 127.0.0.1."

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest


class MlflowServer(NamedTuple):
    "What the session's `mlflow_server` fixture yields: its URI and the folder of its proxied artifacts."

    uri: str
    artifacts: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_mlflow_server(tmp_path_factory):
    """Generator for a fixture: start `mlflow server` (SQLite backend, proxied local artifacts, no auth) and
    yield (process, uri, folder); its whole process group is stopped at the end. It boots in ~25 s (minutes on a
    busy machine): start it early."""
    d = tmp_path_factory.mktemp('mlflow-server')
    port = free_port()
    env = {**os.environ, 'MLFLOW_DISABLE_TELEMETRY': 'true', 'NO_PROXY': '127.0.0.1,localhost'}
    log = open(d / 'server.log', 'wb')
    proc = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'mlflow',
            'server',
            '--backend-store-uri',
            f"sqlite:///{d / 'backend.db'}",
            '--artifacts-destination',
            str(d / 'artifacts'),
            '--host',
            '127.0.0.1',
            '--port',
            str(port),
            '--workers',
            '1',
        ],
        cwd=d,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc, f'http://127.0.0.1:{port}', d
    finally:
        stop_group(proc, timeout=3)
        log.close()


def stop_group(proc, timeout: float = 3.0):
    "SIGTERM to the process group of `proc` (started with start_new_session=True), SIGKILL after `timeout` seconds."
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def wait_healthy(proc, uri, d, timeout=300) -> str:
    "Block until the server answers /health (fail the test with its log if it exits or never answers)."
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited ({proc.returncode}): {(d / 'server.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f'{uri}/health', timeout=2) as r:
                if r.status == 200:
                    return uri
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server not healthy after {timeout} s: {(d / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
