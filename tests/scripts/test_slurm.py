"""scripts/slurm/study.sbatch: its signal and requeue logic with fake Slurm commands (fast), and
the real thing on a one-node Slurm cluster started here when Slurm is installed (slow).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers.processes import free_port, kill_marked

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
SBATCH = ROOT / "scripts/slurm/study.sbatch"
TINY = ROOT / "scripts/slurm/tiny.yaml"

# ------------------------------------------------------------------ fake srun, scontrol, python

SHIMS = {
    # a Ray step: logs its arguments, runs until srun is signalled
    "srun": """\
        echo "$*" >>"$SHIM_LOG/srun"
        trap 'echo TERM >>"$SHIM_LOG/srun.signals"; exit 0' TERM
        while :; do sleep 0.1; done
        """,
    "scontrol": """\
        case "$1" in
            show) printf '%s\\n' $FAKE_NODES ;;
            requeue) echo "$2" >>"$SHIM_LOG/requeue" ;;
        esac
        """,
    # the cluster check (stdin script) passes; the driver runs until TERM (or exits at once)
    "python": """\
        case "$1" in
            -) cat >/dev/null ;;
            -m)
                printf '%s\\n' "$@" >"$SHIM_LOG/driver.args"
                echo "$RAY_AUTH_TOKEN_PATH $RAY_AUTH_MODE" >"$SHIM_LOG/driver.env"
                [ -n "${DRIVER_EXIT:-}" ] && exit "$DRIVER_EXIT"
                trap 'echo TERM >>"$SHIM_LOG/driver.signals"; exit 130' TERM
                touch "$SHIM_LOG/driver.started"
                while :; do sleep 0.1; done ;;
            *) exec "$REAL_PYTHON" "$@" ;;
        esac
        """,
}


@pytest.fixture
def fake_slurm(tmp_path):
    """(env, log folder, a listening 'Ray head' port): the script's world, all fake."""
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for name, body in SHIMS.items():
        path = bin_dir / name
        path.write_text("#!/bin/bash\n" + textwrap.dedent(body))
        path.chmod(0o755)
    head = socket.socket()
    head.bind(("127.0.0.1", 0))
    head.listen(16)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "REAL_PYTHON": sys.executable,
        "SHIM_LOG": str(log),
        "FAKE_NODES": "localhost node2",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "localhost,node2",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_CPUS_PER_TASK": "3",
        "RCL_SLURM_DIR": str(tmp_path / "job"),
        "RAY_PORT": str(head.getsockname()[1]),
    }
    yield env, log
    head.close()


def _start(env, cwd):
    return subprocess.Popen(
        ["bash", str(SBATCH), "studies/x.yaml", "--set", "train.epochs=1"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(proc, timeout=60):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return out


def _wait_for(path: Path, proc, timeout=60):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < deadline, f"{path.name} never appeared"
        time.sleep(0.1)


def test_sbatch_script_parses():
    assert subprocess.run(["bash", "-n", str(SBATCH)]).returncode == 0
    text = SBATCH.read_text()
    for line in ("--signal=B:USR1@", "--requeue", "--open-mode=append"):
        assert f"#SBATCH {line}" in text


def test_a_finished_study_stops_ray_and_is_not_requeued(fake_slurm, tmp_path):
    env, log = fake_slurm
    proc = _start({**env, "DRIVER_EXIT": "0"}, tmp_path)
    out = _finish(proc)
    assert proc.returncode == 0, out
    port = env["RAY_PORT"]
    args = (log / "driver.args").read_text().split("\n")
    assert args[:3] == ["-m", "rcl_study.run", "studies/x.yaml"]
    assert f"resources.address=localhost:{port}" in args and "--resume" in args
    assert args[-3:-1] == ["--set", "train.epochs=1"]  # the sbatch arguments, passed on
    steps = (log / "srun").read_text().splitlines()
    assert len(steps) == 2 and "-w localhost" in steps[0] and f"--head --port={port}" in steps[0]
    assert "-w node2" in steps[1] and f"--address=localhost:{port}" in steps[1]
    assert all("--num-cpus=3" in s and "--cpus-per-task=3" in s for s in steps)
    assert len((log / "srun.signals").read_text().split()) == 2  # both Ray steps stopped
    assert not (log / "requeue").exists()
    token, mode = (log / "driver.env").read_text().split()
    assert mode == "token" and Path(token).parent == tmp_path / "job"
    assert oct(Path(token).stat().st_mode & 0o777) == "0o600" and len(Path(token).read_text()) > 32


@pytest.mark.parametrize(
    "signals,requeued",
    [(["USR1"], True), (["USR1", "TERM"], True), (["TERM"], False), (["TERM", "TERM"], False)],
)
def test_a_signal_stops_the_driver_once_then_ray(fake_slurm, tmp_path, signals, requeued):
    """USR1 (the time limit is near) requeues; TERM alone (scancel) must not, or it never ends."""
    env, log = fake_slurm
    proc = _start(env, tmp_path)
    _wait_for(log / "driver.started", proc)
    for name in signals:
        os.kill(proc.pid, getattr(signal, f"SIG{name}"))
        time.sleep(0.3)
    out = _finish(proc)
    assert proc.returncode == 130, out
    assert (log / "driver.signals").read_text().split() == ["TERM"]  # once: a graceful stop
    assert len((log / "srun.signals").read_text().split()) == 2
    if requeued:
        assert (log / "requeue").read_text().split() == ["4242"]
        assert out.index("stopping Ray") < out.index("requeued")
    else:
        assert not (log / "requeue").exists() and "requeued" not in out


def test_a_driver_that_fails_is_not_requeued(fake_slurm, tmp_path):
    env, log = fake_slurm
    proc = _start({**env, "DRIVER_EXIT": "2"}, tmp_path)
    out = _finish(proc)
    assert proc.returncode == 2, out
    assert not (log / "requeue").exists()


# ------------------------------------------------------------- a real one-node Slurm cluster


SLURM_CONF = """\
ClusterName=rcltest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/{auth}
CredType=cred/{auth}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
JobRequeue=1
ReturnToService=2
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _munge_works() -> bool:
    if not (shutil.which("munge") and shutil.which("unmunge")):
        return False
    try:
        enc = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        dec = subprocess.run(["unmunge"], input=enc.stdout, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return enc.returncode == 0 and dec.returncode == 0


@pytest.fixture
def slurm_cluster(tmp_path):
    """env for sbatch & co: a slurmctld and a slurmd on this machine, stopped afterwards."""
    needed = ("sbatch", "slurmctld", "slurmd", "scontrol", "scancel", "squeue")
    if any(shutil.which(c) is None for c in needed):
        pytest.skip("Slurm (slurm-wlm: slurmctld, slurmd, sbatch) is not installed")
    if os.geteuid() != 0:
        pytest.skip("the one-node Slurm cluster runs its daemons as root")
    pytest.importorskip("ray")
    auth = "munge" if _munge_works() else "none"
    conf_dir = Path(tempfile.mkdtemp(prefix="rclslurm"))
    for sub in ("state", "spool"):
        (conf_dir / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = conf_dir / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            host=host,
            ctld_port=free_port(),
            d_port=free_port(),
            auth=auth,
            dir=conf_dir,
            cpus=2,
        )
    )
    ray_tmp = tempfile.mkdtemp(prefix="rclsr", dir="/tmp")  # short: Ray's socket paths
    env = {
        **os.environ,
        "SLURM_CONF": str(conf),
        "PYTHONPATH": str(ROOT),
        "RAY_TMPDIR": ray_tmp,
        "RCL_TEST_SLURM_DIR": str(conf_dir),  # for _why
    }
    env.pop("RAY_ADDRESS", None)
    daemons = []
    try:
        for cmd in (["slurmctld", "-D", "-i", "-f", str(conf)], ["slurmd", "-D", "-f", str(conf)]):
            daemons.append(
                subprocess.Popen(
                    cmd,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            time.sleep(2)
        deadline = time.time() + 60
        while True:
            info = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True
            )
            if info.stdout.strip() == "idle":
                break
            if time.time() > deadline or any(d.poll() is not None for d in daemons):
                log = "".join(
                    (conf_dir / f).read_text()[-2000:]
                    for f in ("slurmctld.log", "slurmd.log")
                    if (conf_dir / f).exists()
                )
                pytest.skip(f"the one-node Slurm cluster did not come up ({auth}): {log}")
            time.sleep(1)
        yield env
    finally:
        subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True)
        time.sleep(3)
        for proc in reversed(daemons):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        kill_marked(ray_tmp)
        shutil.rmtree(conf_dir, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _job_state(env, job: str) -> str:
    out = subprocess.run(
        ["scontrol", "show", "job", job], env=env, capture_output=True, text=True
    ).stdout
    for word in out.split():
        if word.startswith("JobState="):
            return word.split("=", 1)[1]
    return "GONE"


def _why(env, job: str, log: Path) -> str:
    """The job's log, its Slurm record and the daemons' last lines: what an assertion shows."""
    parts = [log.read_text() if log.exists() else f"no {log.name}"]
    parts.append(
        subprocess.run(
            ["scontrol", "show", "job", job], env=env, capture_output=True, text=True
        ).stdout
    )
    for name in ("slurmctld.log", "slurmd.log"):
        path = Path(env["RCL_TEST_SLURM_DIR"]) / name
        if path.exists():
            parts.append("\n".join(path.read_text().splitlines()[-25:]))
    return "\n----\n".join(parts)


def _records(out: Path) -> list[dict]:
    path = out / "records.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_a_real_slurm_job_stops_on_usr1_requeues_and_resumes(slurm_cluster, tmp_path):
    env = slurm_cluster
    options = ["--parsable", "--nodes=1", "--cpus-per-task=2", "--time=20", f"--chdir={tmp_path}"]
    study = [str(TINY), "--set", "train.epochs=8"]
    sub = subprocess.run(
        ["sbatch", *options, str(SBATCH), *study],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    job = sub.stdout.strip().split(";")[0]
    out = tmp_path / "runs/slurm-tiny"
    log = tmp_path / f"slurm-rcl-study-{job}.out"
    deadline = time.time() + 600
    while len(_records(out)) < 2:  # two trials done, two running
        assert _job_state(env, job) in ("PENDING", "RUNNING"), _why(env, job, log)
        assert time.time() < deadline, _why(env, job, log)
        time.sleep(1)
    before = {r["trial_id"]: r["finished"] for r in _records(out)}
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=env, check=True)
    while "requeued" not in (log.read_text() if log.exists() else ""):
        assert time.time() < deadline, _why(env, job, log)
        time.sleep(1)
    requeued = time.time()
    while (state := _job_state(env, job)) != "COMPLETED":
        assert state not in ("FAILED", "CANCELLED", "TIMEOUT"), _why(env, job, log)
        assert time.time() < deadline, _why(env, job, log)
        # Slurm holds a requeued job for two minutes (a start within the second of the requeue
        # would find its credential revoked); after 10 s, let it start
        if state == "PENDING" and time.time() - requeued > 10:
            subprocess.run(
                ["scontrol", "update", f"JobId={job}", "StartTime=now"],
                env=env,
                capture_output=True,
            )
        time.sleep(2)
    text = log.read_text()
    assert "got USR1" in text and "status 130" in text and "start 2" in text, text
    assert "status 0" in text, text
    records = _records(out)
    assert sorted(r["trial_id"] for r in records) == sorted(
        ["none__s0", "balance__s0", "margin__s0", "balance+margin__s0"]
    )  # each trial once
    assert all(r["status"] == "ok" and r["attempts"] == 1 for r in records)
    for r in records:  # the trials finished before the signal were not trained again
        if r["trial_id"] in before:
            assert r["finished"] == before[r["trial_id"]]
