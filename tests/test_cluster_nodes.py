"""A study on a real two-node Ray cluster whose nodes share no disk (slow).

The head node has no CPUs, so every trial runs on the worker node; the worker node runs in its
own mount namespace (``unshare -m``) with a private tmpfs over the study's ``runs/`` folder, so
nothing it writes there is visible to the driver. Every record must still be ``ok``, with the
metrics of the same study run in one process: results travel through Ray, not through a disk.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from rcl_study.trials.folder import StudyFolder

pytestmark = pytest.mark.slow

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())

TINY = {
    "name": "tiny",
    "data": {"dataset": "digits_lt", "imbalance_ratio": 10, "test_limit": 100},
    "model": {"arch": "small_cnn", "width": 8, "proj_hidden": 16, "proj_dim": 8},
    "train": {
        "epochs": 2,
        "batch_size": 32,
        "max_steps_per_epoch": 2,
        "warmup_epochs": 0,
        "threads": 1,
        "eval_every": 1,
    },
    "loss": {"preset": "bcl+rcl", "balance": 1.0, "margin": 0.5},
    "study": {"kind": "ablation", "components": ["balance", "margin"], "seeds": [0]},
    "resources": {"cpus_per_trial": 1, "pack": 2},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_tree(proc: subprocess.Popen, marker: str) -> None:
    """Stop one node: its session, then any process whose command line names ``marker``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def two_nodes(tmp_path):
    """(address, env, runs folder): a CPU-less head and a 2-CPU worker with a private runs/."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    pytest.importorskip("ray")
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    temp_dir = tempfile.mkdtemp(prefix="rcln", dir="/tmp")
    port = _free_port()
    env = {
        **os.environ,
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_AUTH_MODE": "token",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("RAY_ADDRESS", None)
    runs = tmp_path / "study" / "runs"
    runs.mkdir(parents=True)
    ray = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block"]
    head = subprocess.Popen(
        [*ray, "--head", f"--port={port}", "--num-cpus=0", f"--temp-dir={temp_dir}",
         "--include-dashboard=false", "--disable-usage-stats"],  # fmt: skip
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    nodes = [head]
    try:
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.time() < deadline, "ray start --head failed"
                time.sleep(1)
        join = " ".join([*ray, f"--address=127.0.0.1:{port}", "--num-cpus=2"])
        worker = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             f"mount -t tmpfs rclnode {runs} && exec {join}"],  # fmt: skip
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        nodes.append(worker)
        _wait_for_cpus(f"127.0.0.1:{port}", env, 2)
        yield f"127.0.0.1:{port}", env, runs
    finally:
        for node in reversed(nodes):
            _kill_tree(node, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_cpus(address: str, env: dict, cpus: int, timeout: float = 120) -> None:
    code = (
        "import sys, ray; ray.init(address=sys.argv[1], log_to_driver=False); "
        "print(ray.cluster_resources().get('CPU', 0))"
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(
            [sys.executable, "-c", code, address], env=env, capture_output=True, text=True
        )
        if out.returncode == 0 and float(out.stdout.strip().splitlines()[-1]) >= cpus:
            return
        time.sleep(2)
    raise AssertionError("the worker node did not join the cluster")


def _study(folder: Path, **resources) -> Path:
    raw = {**TINY, "resources": {**TINY["resources"], **resources}}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _run(path: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rcl_study.run", str(path), "--no-progress"],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_records_travel_through_ray_when_nodes_share_no_disk(two_nodes, tmp_path):
    address, env, runs = two_nodes
    remote = _run(_study(runs.parent, address=address), env)
    assert remote.returncode == 0, remote.stderr[-3000:]
    folder = StudyFolder(runs / "tiny")
    records = {r.trial_id: r for r in folder.records()}
    assert len(records) == 4 and all(r.ok for r in records.values()), [
        (r.trial_id, r.status, r.reason) for r in records.values()
    ]
    # the worker's trial folders never reached the driver's disk
    assert not list((runs / "tiny").glob("trials/*/result.json"))
    assert all(len(r.history) == 2 for r in records.values())  # per-evaluation history too
    (tmp_path / "local").mkdir()
    local_env = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    here = _run(_study(tmp_path / "local", executor="local"), local_env)
    assert here.returncode == 0, here.stderr[-3000:]
    expected = {r.trial_id: r for r in StudyFolder(tmp_path / "local/runs/tiny").records()}
    assert expected.keys() == records.keys()
    for tid, r in records.items():
        for key in ("top1", "balanced_acc", "many_acc", "few_acc"):
            assert r.metrics[key] == expected[tid].metrics[key], (tid, key)
