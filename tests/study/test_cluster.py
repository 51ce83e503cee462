"""Joining an existing Ray cluster: bounded checks, token auth, local runs.

The slow test starts a real one-CPU cluster with ``ray start --head --block`` on a free port,
with token authentication and its own temp folder, and stops exactly that cluster afterwards
(its process group, then any process naming its temp folder). It never runs ``ray stop``, which
would stop every Ray instance on the machine, other users' included.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from rcl_study.study import cluster as adapter
from rcl_study.trials.folder import StudyFolder
from tests.conftest import TINY_STUDY, Only, run_cli
from tests.helpers.processes import free_port, kill_marked

#: this file's tiny study: two trials (margin off and on, one seed)
TINY_HERE = {
    "loss": Only(preset="bcl+rcl", margin=0.5),
    "study": {"components": ["margin"], "seeds": [0]},
}


class _Server:
    """A TCP server that is not Ray: silent, or answering every connection with HTTP 400."""

    def __init__(self, reply: bytes | None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.reply, self.conns = reply, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.sendall(self.reply)
                conn.close()

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("reply", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n"])
def test_an_address_that_is_not_ray_is_a_cluster_error_within_the_check(reply, tiny_study):
    server = _Server(reply)
    cfg = tiny_study.parse(TINY_HERE, resources=Only(address=f"127.0.0.1:{server.port}"))
    t0 = time.time()
    try:
        with pytest.raises(adapter.ClusterError, match="resources.address"):
            adapter.connect(cfg)
    finally:
        server.close()
        adapter.disconnect()
    assert time.time() - t0 < 15  # the 10-second check plus process start-up


def test_auto_without_a_cluster_is_a_cluster_error(monkeypatch, tiny_study):
    from ray._private import services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir=None: None)
    cfg = tiny_study.parse(TINY_HERE, resources=Only(address="auto"))
    with pytest.raises(adapter.ClusterError, match="found no Ray cluster started with 'ray start'"):
        adapter.connect(cfg)
    assert not adapter.ray.is_initialized()


# ------------------------------------------------------------------- a real cluster (slow)


def _gcs_jobs(address: str, env: dict) -> int:
    """How many drivers (jobs) the cluster at ``address`` has seen."""
    code = (
        "import sys; from ray._raylet import GcsClient; "
        "print(len(GcsClient(address=sys.argv[1]).get_all_job_info()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, address],
        env={**env, "RAY_AUTH_MODE": "token"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.strip().splitlines()[-1])


def _stop_cluster(head: subprocess.Popen, temp_dir: str) -> None:
    """Stop exactly this cluster: its process group, then any process naming its temp folder."""
    try:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=45)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    head.wait()
    kill_marked(temp_dir)


@pytest.fixture
def ray_head(tmp_path):
    """A one-CPU token-authenticated cluster from ``ray start --head`` on a free port."""
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    temp_dir = tempfile.mkdtemp(prefix="rclc", dir="/tmp")  # short: Unix socket paths are
    port = free_port()
    env = {**os.environ, "RAY_AUTH_TOKEN_PATH": str(token)}
    env.pop("RAY_AUTH_MODE", None)
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=1",
            f"--temp-dir={temp_dir}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],  # fmt: skip
        env={**env, "RAY_AUTH_MODE": "token"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None, "ray start exited"
                time.sleep(1)
        yield f"127.0.0.1:{port}", env
    finally:
        _stop_cluster(head, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _run_study(folder: Path, env: dict, **resources) -> subprocess.CompletedProcess:
    path = TINY_STUDY.write(folder, TINY_HERE, resources=resources)
    return run_cli(path, "--no-progress", cwd=folder, env=env, timeout=600)


@pytest.mark.slow
def test_a_ray_start_cluster_with_token_auth_runs_the_study(ray_head, tmp_path):
    address, env = ray_head
    env = {**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    jobs = _gcs_jobs(address, env)
    (tmp_path / "on").mkdir()
    proc = _run_study(tmp_path / "on", env, address=address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = StudyFolder(tmp_path / "on/runs/tiny").read_rows()[0]
    assert sorted(r["status"] for r in recs) == ["ok", "ok"]
    assert _gcs_jobs(address, env) == jobs + 1  # the study's driver joined this cluster
    # a local run while the cluster is up (and named by RAY_ADDRESS) starts its own instance
    (tmp_path / "local").mkdir()
    proc = _run_study(tmp_path / "local", {**env, "RAY_ADDRESS": address})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(StudyFolder(tmp_path / "local/runs/tiny").read_rows()[0]) == 2
    assert _gcs_jobs(address, env) == jobs + 1  # it did not join the cluster
    assert json.loads((tmp_path / "on/runs/tiny/plan.json").read_text())["trials"]
