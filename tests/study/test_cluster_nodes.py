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
from tests.conftest import TINY_STUDY
from tests.helpers.processes import free_port, kill_marked

pytestmark = pytest.mark.slow

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())

#: the shared tiny study (tests/conftest.py), 2 epochs with an evaluation after each
TINY = TINY_STUDY(
    train={"epochs": 2, "eval_every": 1},
    study={"components": ["balance", "margin"], "seeds": [0]},
    resources={"pack": 2},
)


def _kill_tree(proc: subprocess.Popen, marker: str) -> None:
    """Stop one node: its session, then any process whose command line names ``marker``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    kill_marked(marker)


class Cluster:
    """A CPU-less head node and worker nodes, each worker with a private ``runs/`` folder."""

    def __init__(self, tmp_path: Path):
        token = tmp_path / "auth_token"
        token.write_text(secrets.token_hex(32))
        self.temp_dir = tempfile.mkdtemp(prefix="rcln", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "RAY_AUTH_TOKEN_PATH": str(token),
            "RAY_AUTH_MODE": "token",
            "PYTHONPATH": str(ROOT),
        }
        self.env.pop("RAY_ADDRESS", None)
        self.runs = tmp_path / "study" / "runs"
        self.runs.mkdir(parents=True)
        self.ray = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block"]
        self.head: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def start_head(self) -> None:
        self.head = subprocess.Popen(
            [
                *self.ray,
                "--head",
                f"--port={self.port}",
                "--num-cpus=0",
                f"--temp-dir={self.temp_dir}",
                "--include-dashboard=false",
                "--disable-usage-stats",
            ],  # fmt: skip
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.head.poll() is None and time.time() < deadline, "ray start failed"
                time.sleep(1)

    def add_worker(self, cpus: int) -> subprocess.Popen:
        """A worker node in its own mount namespace, a private tmpfs over the study's runs/."""
        join = " ".join([*self.ray, f"--address={self.address}", f"--num-cpus={cpus}"])
        worker = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"mount -t tmpfs rclnode {self.runs} && exec {join}",
            ],  # fmt: skip
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: subprocess.Popen) -> int:
        """The node dies: every process in its mount namespace, at once (Ray's workers leave the
        node's session and process tree, but not its namespace); returns how many."""
        ns = os.readlink(f"/proc/{worker.pid}/ns/mnt")
        killed = 0
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and os.readlink(f"/proc/{pid}/ns/mnt") == ns:
                    os.kill(int(pid), signal.SIGKILL)
                    killed += 1
            except OSError:
                pass
        worker.wait()
        return killed

    def stop(self) -> None:
        for node in [*reversed(self.workers), self.head]:
            if node is not None:
                _kill_tree(node, self.temp_dir)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path):
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    pytest.importorskip("ray")
    c = Cluster(tmp_path)
    try:
        c.start_head()
        yield c
    finally:
        c.stop()


@pytest.fixture
def two_nodes(cluster):
    """(address, env, runs folder): a CPU-less head and a 2-CPU worker with a private runs/."""
    cluster.add_worker(2)
    _wait_for_cpus(cluster.address, cluster.env, 2)
    return cluster.address, cluster.env, cluster.runs


def _wait_for_cpus(address: str, env: dict, cpus: int, timeout: float = 240) -> None:
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
    # each unit's own output, remote (logs/ray.log: Ray's own lines, on the driver)
    logs = sorted(p for p in (runs / "tiny" / "logs").glob("*.log") if p.name != "ray.log")
    assert len(logs) == 2 and all("epoch 2/2" in p.read_text() for p in logs), logs
    (tmp_path / "local").mkdir()
    local_env = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    here = _run(_study(tmp_path / "local", executor="local"), local_env)
    assert here.returncode == 0, here.stderr[-3000:]
    expected = {r.trial_id: r for r in StudyFolder(tmp_path / "local/runs/tiny").records()}
    assert expected.keys() == records.keys()
    for tid, r in records.items():
        for key in ("top1", "balanced_acc", "many_acc", "few_acc"):
            assert r.metrics[key] == expected[tid].metrics[key], (tid, key)


def _checkpointed_trials(storage: Path) -> set[str]:
    """Tune trial folders in ``storage`` whose checkpoint the driver has registered.

    A worker writes its checkpoint to the storage before the driver registers it, so a file
    there does not yet mean a restart would get it. With ``num_to_keep=1`` the driver deletes the
    previous checkpoint when it registers the next one: a folder that holds one checkpoint, the
    second or later, holds a registered one.
    """
    out = set()
    for trial in storage.glob("*/*"):
        ckpts = sorted(trial.glob("checkpoint_*"))
        if len(ckpts) == 1 and (ckpts[0] / "checkpoint.pt").is_file():
            if int(ckpts[0].name.split("_")[-1]) >= 1:
                out.add(trial.name)
    return out


def test_a_lost_node_costs_only_the_epochs_since_its_last_checkpoint(cluster, tmp_path):
    """Two worker nodes share only the storage folder; one dies mid-trial; the study finishes."""
    storage = tmp_path / "storage"  # on the real disk: every node sees it, unlike runs/
    storage.mkdir()
    a = cluster.add_worker(1)
    _wait_for_cpus(cluster.address, cluster.env, 1)
    cluster.add_worker(1)  # one after the other: two raylets starting at once may collide
    _wait_for_cpus(cluster.address, cluster.env, 2)
    raw = {
        **TINY,
        # whole epochs (about 0.4 s each here), so that a trial is still running when its node dies
        "train": {
            **TINY["train"],
            "epochs": 30,
            "checkpoint_every": 1,
            "max_steps_per_epoch": None,
        },
        "study": {**TINY["study"], "components": ["margin"]},
    }
    raw["resources"] = {
        "cpus_per_trial": 1,
        "pack": 1,
        "address": cluster.address,
        "storage": str(storage),
        "max_failures": 2,
    }
    path = cluster.runs.parent / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    driver = subprocess.Popen(
        [sys.executable, "-m", "rcl_study.run", str(path), "--no-progress"],
        cwd=path.parent,
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while len(_checkpointed_trials(storage)) < 2:  # both mid-way, each with a registered checkpoint
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        assert time.time() < deadline, "no checkpoints reached the storage folder"
        time.sleep(0.2)
    t_kill = time.time()
    killed = cluster.kill_worker(a)
    print(f"killed node A ({killed} processes) with both trials checkpointed", flush=True)
    out, err = driver.communicate(timeout=600)
    lost_s = time.time() - t_kill
    assert driver.returncode == 0, err[-3000:]
    records = {r.trial_id: r for r in StudyFolder(cluster.runs / "tiny").records()}
    assert len(records) == 2 and all(r.ok for r in records.values()), err[-3000:]
    restarted = [r for r in records.values() if r.metrics.get("restarts")]
    assert len(restarted) == 1, {t: r.metrics.get("restarts") for t, r in records.items()}
    resumed = restarted[0].metrics["resumed_from_epoch"]
    assert 1 <= resumed < 30  # resumed from a checkpoint, not from scratch
    print(f"node lost: trial {restarted[0].trial_id} resumed at epoch {resumed}; {lost_s:.0f}s")
    # its final metrics equal an uninterrupted run of the same study in one process
    (tmp_path / "local").mkdir()
    local = {**raw, "resources": {"cpus_per_trial": 1, "pack": 1, "executor": "local"}}
    (tmp_path / "local" / "tiny.yaml").write_text(yaml.safe_dump(local))
    here = subprocess.run(
        [sys.executable, "-m", "rcl_study.run", "tiny.yaml", "--no-progress"],
        cwd=tmp_path / "local",
        env={k: v for k, v in cluster.env.items() if k != "RAY_AUTH_MODE"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert here.returncode == 0, here.stderr[-3000:]
    expected = {r.trial_id: r for r in StudyFolder(tmp_path / "local/runs/tiny").records()}
    for tid, r in records.items():
        for key in ("top1", "balanced_acc", "many_acc", "few_acc"):
            assert r.metrics[key] == expected[tid].metrics[key], (tid, key)
