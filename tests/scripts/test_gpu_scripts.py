"""scripts/gpu: the metrics log a killed run leaves, and the smoke check's choice of CUDA tests."""

import importlib.util
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import DROP, TINY_STUDY, Only

ROOT = Path(__file__).resolve().parents[2]
#: the tiny study with a smaller network (width 4), digits at their default imbalance
TINY_SMALL = {
    "data": {"imbalance_ratio": DROP},
    "model": {"width": 4, "proj_hidden": 8, "proj_dim": 4},
}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "gpu" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_metrics_log_survives_a_cut_line_and_keeps_the_last_of_each_epoch(tmp_path):
    tl = _load("train_logged")
    path = tmp_path / "m.jsonl"
    log = tl.MetricsLog(path)
    log({"epoch": 5, "top1": 0.3})
    log({"epoch": 10, "top1": 0.4})
    log({"epoch": 10})  # a non-main process's report: not logged
    log({"epoch": 10, "top1": 0.45})  # the same epoch again after a resume
    with open(path, "a") as f:
        f.write('{"epoch": 15, "top1": 0.')  # killed mid-line
    assert len(path.read_text().splitlines()) == 4
    rows = tl.read_metrics(path)
    assert [(r["epoch"], r["top1"]) for r in rows] == [(5, 0.3), (10, 0.45)]
    assert tl.read_metrics(tmp_path / "absent.jsonl") == []
    assert json.loads(path.read_text().splitlines()[0]) == {"epoch": 5, "top1": 0.3}


def test_smoke_runs_the_tests_that_skip_without_cuda():
    smoke = _load("smoke")
    ids = smoke.cuda_test_ids(ROOT / "tests")
    assert "tests/data/test_augment.py::test_cpu_and_gpu_agree_in_distribution" in ids
    assert "tests/data/test_augment.py::test_crop_keeps_content_and_zero_pads" not in ids
    assert all(Path(ROOT / i.split("::")[0]).is_file() for i in ids)


@pytest.mark.slow
def test_a_stopped_run_leaves_its_curve_and_a_checkpoint_that_resumes(tmp_path, tiny_study):
    study = tiny_study(
        TINY_SMALL,
        name="t",
        data={"test_limit": 50},
        train={"epochs": 400, "progress": False, "eval_every": 1, "checkpoint_every": 1},
        loss=Only(preset="bcl"),
        study=DROP,
        resources=DROP,
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    work, metrics, out = tmp_path / "w", tmp_path / "w" / "m.jsonl", tmp_path / "r.json"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "gpu" / "train_logged.py"),
        str(path),
        "--workdir",
        str(work),
        "--metrics",
        str(metrics),
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL, stdout=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and (
        not metrics.exists() or len(metrics.read_text().splitlines()) < 3
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 1
    res = json.loads(out.read_text())
    assert res["status"] == "stopped" and res["epoch"] >= 3
    assert [h["epoch"] for h in res["history"]] == list(range(1, res["epoch"] + 1))
    ckpt = torch.load(work / "checkpoint.pt", map_location="cpu", weights_only=True)
    # killed between an evaluation and its checkpoint at worst: one epoch behind the curve
    assert int(ckpt["epoch"]) in (res["epoch"] - 1, res["epoch"])
    # resumed to a shorter end, it trains only the epochs after the checkpoint
    study["train"]["epochs"] = int(ckpt["epoch"]) + 1
    path.write_text(yaml.safe_dump(study))
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
    res = json.loads(out.read_text())
    assert res["status"] == "ok" and res["epoch"] == int(ckpt["epoch"]) + 1
    epochs = [r["epoch"] for r in _load("train_logged").read_metrics(metrics)]
    assert epochs == list(range(1, res["epoch"] + 1))


# --- scripts/gpu/ablation.py: priority packs, syncs into $OUT, restore, the run


def test_priority_order_puts_bcl_then_bcl_rcl_then_singles_then_pairs():
    from rcl_study.trials.records import TrialPlan
    from rcl_study.trials.unit import Unit

    ab = _load("ablation")
    # the study's own variant order (expand): none, singles, pairs, all three
    names = ["none", "balance", "margin", "scale", "balance+margin", "balance+scale"]
    names += ["scale+margin", "balance+scale+margin"]
    unit = Unit(tuple(TrialPlan(f"{v}__s0", v, 0) for v in names), "pack__s0__x")
    (got,) = ab.prioritised([unit])
    assert [p.variant for p in got.members] == [
        "none",
        "balance+scale+margin",
        "balance",
        "scale",
        "margin",
        "balance+scale",
        "balance+margin",
        "scale+margin",
    ]
    assert got.pack_id == unit.pack_id
    assert ab.priority_rank("margin+balance") == ab.priority_rank("balance+margin")[:1] + (
        "margin+balance",
    )


class _SyntheticSpeed:
    """A device of synthetic speed: a pack epoch of k members takes ``shared + per_member * k``
    seconds on a fake clock (the budget's), whatever the CPU takes."""

    def __init__(self, shared: float, per_member: float) -> None:
        self.now = 0.0
        self.shared, self.per_member = shared, per_member

    def clock(self) -> float:
        return self.now

    def timed(self, run):
        out = run()  # train_pack_epoch: the mean losses of each member trained
        seconds = self.shared + self.per_member * len(out)
        self.now += seconds
        return out, seconds


@pytest.mark.parametrize(
    "epochs, seconds_left_after_2, kept, budget_end",
    [
        # 8 members: 10 s an epoch (2 + 1 per member), 20 s for the first two. With 12.9 s left,
        # 2 epochs and 2 evaluations to go: k members need 2 (2 + k) + 2 k e <= 0.9 x 12.9 =
        # 11.61 (e: one evaluation, < 0.2 s here) -> 3 fit; they finish (epochs 3, 4: 5 s each)
        (4, 12.9, 3, False),
        # 6 s left for 4 epochs: not even one member fits; BCL alone trains on (3 s an epoch),
        # and before epoch 4 (3 s + its evaluation > 3 s left) the budget ends: stopped at 3
        (6, 6.0, 1, True),
    ],
)
def test_a_priority_pack_keeps_what_the_timed_second_epoch_says_fits(
    tmp_path, monkeypatch, epochs, seconds_left_after_2, kept, budget_end
):
    """The CPU rehearsal of the GPU ablation: the whole ablation as one pack, a synthetic device."""
    import rcl_study.trainer.pack as pack
    from rcl_study.trainer.budget import PackBudget
    from rcl_study.trials.folder import StudyFolder

    ab = _load("ablation")
    out = tmp_path / "runs"
    raw = {**TINY_ABLATION, "study": {**TINY_ABLATION["study"], "output_dir": str(out)}}
    raw["report"] = {"dir": str(tmp_path / "report")}  # the run ships its records there
    raw["train"] = {**raw["train"], "epochs": epochs}
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(raw))
    speed = _SyntheticSpeed(shared=2.0, per_member=1.0)
    monkeypatch.setattr(pack.ev, "timed", speed.timed)
    budget = PackBudget(deadline=20.0 + seconds_left_after_2, clock=speed.clock)
    rc = ab.run(str(study), [], executor=ab.priority_executor(budget))
    assert rc == 124  # some members stopped
    assert [d["keep"] for d in budget.decisions] == [kept]
    assert budget.decisions[0]["members"] == 8 and budget.decisions[0]["epoch_s"] == 10.0
    recs = {r.variant: r for r in StudyFolder(out).records()}
    assert len(recs) == 8
    first = list(ab.PRIORITY[:kept])
    for variant, r in recs.items():
        if variant in first:
            if budget_end:
                assert r.status.value == "stopped"
                assert r.reason == f"budget end after epoch 3 of {epochs}"
                assert r.metrics["epochs_trained"] == 3 and r.metrics["epoch"] == 3
            else:
                assert r.ok and r.metrics["epoch"] == epochs
        else:  # dropped after the deciding epoch, its evaluation there kept
            assert r.status.value == "stopped", variant
            assert r.reason == f"dropped after epoch 2: only {kept} member(s) fit the budget"
            assert r.metrics["epochs_trained"] == 2 and r.metrics["epoch"] == 2
            assert [h["epoch"] for h in r.history] == [1, 2]


def _fake_study(root, ab, n_members=3, width=40000):
    """A records folder as the engine leaves it mid-run: a pack checkpoint and a trial's."""
    d = root / "study"
    (d / "trials" / "pack__x").mkdir(parents=True)
    (d / "trials" / "none__s0").mkdir(parents=True)
    (d / ".rcl_study").write_text(json.dumps({"study": "gpu_ablation"}))
    (d / "driver.lock").write_text(json.dumps({"pid": 1, "host": "gpu"}))
    (d / "plan.json").write_text(json.dumps({"trials": [{"trial_id": "a__s0"}]}))
    (d / "records.jsonl").write_text(json.dumps({"trial_id": "none__s0", "status": "ok"}) + "\n")
    (d / "trials" / "none__s0" / "result.json").write_text("{}")
    g = torch.Generator().manual_seed(0)
    members = {
        f"m{i}__s0": {
            "model": {"w": torch.randn(width, generator=g)},
            "history": [{"epoch": 5 * (j + 1), "top1": 0.1 * i + j} for j in range(i + 1)],
        }
        for i in range(n_members)
    }
    torch.save({"members": members, "epoch": 10}, d / "trials" / "pack__x" / "checkpoint.pt")
    single = {"model": {"w": torch.ones(3)}, "history": [{"epoch": 5, "top1": 0.5}], "epoch": 5}
    torch.save(single, d / "trials" / "none__s0" / "checkpoint.pt")
    return d, members


def test_sync_keeps_out_within_the_limits_and_restore_gives_the_folder_back(tmp_path, monkeypatch):
    import tarfile

    ab = _load("ablation")
    monkeypatch.setattr(ab, "PART_BYTES", 200_000)  # 3 x 160 kB of weights -> several parts
    d, members = _fake_study(tmp_path, ab)
    meta = tmp_path / "phases.tsv"
    meta.write_text("setup\t1.00\t0\n")
    out = tmp_path / "OUT"
    sig = ab.sync_once(d, out, [meta, tmp_path / "absent.json"])
    names = sorted(p.name for p in out.iterdir())
    parts = [n for n in names if n.startswith("ckpt.0")]
    assert len(parts) >= 3 and len(names) <= 8
    assert all((out / n).stat().st_size <= 200_000 for n in parts)
    with tarfile.open(out / "study.tar") as tar:
        inside = set(tar.getnames())
    assert "study/records.jsonl" in inside and "study/.rcl_study" in inside
    assert "study/driver.lock" not in inside  # another host's lock would block a resume
    assert not any(n.endswith(".pt") for n in inside)
    assert "meta/phases.tsv" in inside and "meta/absent.json" not in inside
    # unchanged checkpoints: the parts are not rewritten
    before = (out / "ckpt.json").stat().st_mtime_ns
    assert ab.sync_once(d, out, [meta], sig) == sig
    assert (out / "ckpt.json").stat().st_mtime_ns == before

    back = tmp_path / "back"
    info = ab.restore(out, back)
    assert info["study"] and "checkpoint_error" not in info
    assert sorted(info["checkpoints"]) == [
        "trials/none__s0/checkpoint.pt",
        "trials/pack__x/checkpoint.pt",
    ]
    for rel in ("records.jsonl", "plan.json", ".rcl_study", "trials/pack__x/checkpoint.pt"):
        assert (back / rel).read_bytes() == (d / rel).read_bytes()
    assert not (back / "driver.lock").exists()
    for tid, m in members.items():  # each member's curve, from the pack checkpoint's history
        rows = [
            json.loads(x) for x in (back / "metrics" / f"{tid}.jsonl").read_text().split("\n") if x
        ]
        assert rows == m["history"]
    assert (back / "metrics" / "none__s0.jsonl").read_text() == '{"epoch": 5, "top1": 0.5}\n'
    assert (back / "meta" / "phases.tsv").read_text() == "setup\t1.00\t0\n"

    (out / parts[1]).write_bytes(b"cut")  # a part from another sync, or cut short
    bad = ab.restore(out, tmp_path / "bad")
    assert bad["study"] and "ckpt.01" in bad["checkpoint_error"]
    assert not (tmp_path / "bad" / "trials" / "pack__x" / "checkpoint.pt").exists()


def test_member_states_take_the_latest_epoch_of_a_trial_in_two_checkpoints(tmp_path):
    ab = _load("ablation")
    d = tmp_path / "s"
    for folder, epoch, w in (("pack__a", 10, 1.0), ("pack__a-2of8", 20, 2.0)):
        (d / "trials" / folder).mkdir(parents=True)
        state = {"members": {"x__s0": {"model": {"w": torch.tensor([w])}, "history": []}}}
        torch.save({**state, "epoch": epoch}, d / "trials" / folder / "checkpoint.pt")
    (d / "trials" / "bad").mkdir()
    (d / "trials" / "bad" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    got = ab.member_states(d)
    assert list(got) == ["x__s0"] and got["x__s0"]["epoch"] == 20
    assert float(got["x__s0"]["model"]["w"]) == 2.0


TINY_ABLATION = TINY_STUDY(
    TINY_SMALL,
    name="tiny_ablation",
    data={"test_limit": 60},
    train={"epochs": 3, "eval_every": 1, "checkpoint_every": 1},
    loss={"scale": 1.2},
    study={"components": ["balance", "scale", "margin"], "seeds": [0]},
    resources={"executor": "local", "pack": 8},
)


@pytest.mark.slow
def test_a_stopped_engine_run_records_every_member_stopped_and_resumes(tmp_path):
    """The CPU rehearsal of a stop at the deadline: SIGTERM mid-pack at tiny size. Exit 124, the
    lock released, all 8 members recorded ``stopped`` with their last evaluation and epoch; a sync
    returns their curves; the same command resumes from the pack checkpoint to the end."""
    from rcl_study.trials.folder import StudyFolder

    ab = _load("ablation")
    study = tmp_path / "s.yaml"
    out = tmp_path / "runs"
    raw = {**TINY_ABLATION, "study": {**TINY_ABLATION["study"], "output_dir": str(out)}}
    raw["report"] = {"dir": str(tmp_path / "report")}  # the run ships its records there
    raw["train"] = {**raw["train"], "epochs": 40}
    study.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu" / "ablation.py"), "run", str(study)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ckpts = out / "trials"
    deadline = time.time() + 180
    while time.time() < deadline:
        states = ab.member_states(out) if ckpts.exists() else {}
        if states and min(s["epoch"] for s in states.values()) >= 2:
            break
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 124
    assert not (out / "driver.lock").exists()
    stopped = StudyFolder(out).records()
    assert len(stopped) == 8
    at = {r.metrics["epochs_trained"] for r in stopped}
    assert len(at) == 1 and min(at) >= 2  # one pack: every member stopped at the same epoch
    for r in stopped:
        n = r.metrics["epochs_trained"]
        assert r.status.value == "stopped"
        assert r.reason == f"stopped by SIGTERM after epoch {n} of 40"
        # evaluated every epoch: the last evaluation is epoch n, or n - 1 for a member whose
        # evaluation after epoch n the TERM came before
        last = r.metrics["epoch"]
        assert last in (n - 1, n)
        assert [h["epoch"] for h in r.history] == list(range(1, last + 1))
    box = tmp_path / "OUT"
    ab.sync_once(out, box, [])
    back = tmp_path / "back"
    assert ab.restore(box, back)["checkpoints"]
    assert len(sorted((back / "metrics").glob("*.jsonl"))) == 8
    # the same command resumes from the pack checkpoint to the end
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    recs = StudyFolder(out).records()
    assert len(recs) == 8 and all(r.ok and r.attempts == 2 for r in recs)
    for r in recs:  # one evaluation per epoch, none lost or repeated across the stop
        assert [h["epoch"] for h in r.history] == list(range(1, 41))


def test_smoke_gates_only_on_device_bf16_and_the_resumed_trial(monkeypatch, capsys):
    smoke = _load("smoke")

    def boom(*args):
        raise RuntimeError("broken")

    monkeypatch.setattr(smoke, "check_bf16_channels_last", lambda device: "fine")
    monkeypatch.setattr(smoke, "check_train_resume", lambda *args: "fine")
    monkeypatch.setattr(smoke, "check_augment", boom)
    monkeypatch.setattr(smoke, "check_cuda_tests", boom)
    assert smoke.main(["s.yaml", "--cpu"]) == 0  # the logged checks fail, the run goes on
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["check"], x["ok"], x["gate"]) for x in lines] == [
        ("device", True, True),
        ("bf16_channels_last", True, True),
        ("train_resume", True, True),
        ("augment", False, False),
        ("cuda_tests", False, False),
    ]
    monkeypatch.setattr(smoke, "check_train_resume", boom)
    assert smoke.main(["s.yaml", "--cpu"]) == 1  # a gate: stops there
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["check"] for x in lines] == ["device", "bf16_channels_last", "train_resume"]


def _phases(script: str) -> list[str]:
    """Each ``phase NAME COMMAND ...`` call of a script (continuation lines joined)."""
    text = (ROOT / "scripts" / "gpu" / script).read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines()]
    return [ln for ln in lines if re.search(r"(^|[!&|] *)phase \w", ln)]


@pytest.mark.parametrize("script", ["ablation.sh", "run.sh"])
def test_every_phase_runs_under_a_timeout_and_out_is_outside_the_repository(script):
    calls = _phases(script)
    assert len(calls) >= 4
    for call in calls:
        assert re.search(r"phase \w+ timeout ", call), call
    text = (ROOT / "scripts" / "gpu" / script).read_text()
    assert "OUT=${OUT:-/tmp/" in text  # absolute, outside the checkout
    assert "SMOKE_S=${SMOKE_S:-120}" in text


def test_the_data_is_copied_and_no_typing_extensions_wheel_is_prepared():
    gpu = ROOT / "scripts" / "gpu"
    ablation = (gpu / "ablation.sh").read_text()
    assert "ln -s" not in ablation and 'cp -f .export/cifar10_lt_ir100.npz.xz "$DATA"' in ablation
    prepare = (gpu / "prepare.sh").read_text()
    assert "typing-extensions==" not in prepare and "typing_extensions" not in re.sub(
        r"rm -f \.whl/typing_extensions-\*\.whl", "", prepare
    )
    speed = (gpu / "speed.sh").read_text()
    assert "OUT=${OUT:-/tmp/" in speed


def _resume_data_path(folder: Path, default: str) -> str:
    """ablation.sh's own ``resume_data_path`` function, run by bash."""
    text = (ROOT / "scripts" / "gpu" / "ablation.sh").read_text()
    fn = re.search(r"^resume_data_path\(\) \{.*?^\}$", text, re.S | re.M).group(0)
    cmd = f'PY="{sys.executable}"\n{fn}\nresume_data_path "$1" "$2"'
    out = subprocess.run(["bash", "-c", cmd, "x", str(folder), default], capture_output=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode().strip()


def test_a_resumed_run_gets_the_data_at_the_path_its_records_hashed(tmp_path):
    """Rehearsal: a stopped run's restored folder resumed with another WORK found the study
    "changed (data.path)" and trained nothing; the resumed run now reuses the stopped run's path."""
    default = "/tmp/rcl_gpu/data/cifar10_lt_ir100.npz.xz"
    assert _resume_data_path(tmp_path, default) == default  # no plan: the default
    was = "/tmp/other_work/data/cifar10_lt_ir100.npz.xz"
    plan = {"meta": {"config": {"data": {"path": was}}}, "trials": []}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert _resume_data_path(tmp_path, default) == was
    for bad in (
        "/tmp/x/other.npz",
        "relative/cifar10_lt_ir100.npz.xz",
        None,
        ["/tmp/data/cifar10_lt_ir100.npz.xz"],
        "/tmp/../etc/data/cifar10_lt_ir100.npz.xz",  # climbs out
        "/tmp/a\n/data/cifar10_lt_ir100.npz.xz",  # a newline
        "/tmp/x/data/cifar10_lt_ir100.npz.xz\n",
        "//data/cifar10_lt_ir100.npz.xz",
        "/etc/cifar10_lt_ir100.npz.xz",  # not in a data folder, as this script makes
    ):
        plan["meta"]["config"]["data"]["path"] = bad
        (tmp_path / "plan.json").write_text(json.dumps(plan))
        assert _resume_data_path(tmp_path, default) == default
    (tmp_path / "plan.json").write_text("{damaged")
    assert _resume_data_path(tmp_path, default) == default


def test_results_table_rows_from_records_curves_and_gaps(tmp_path):
    rt = _load("results_table")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "meta").mkdir()
    rec = {
        "trial_id": "none__s0",
        "variant": "none",
        "seed": 0,  # a record with a variant has a seed (a line without one counts as damaged)
        "status": "ok",
        "metrics": {
            "top1": 0.8123,
            "chosen_top1": 0.8200,
            "chosen_epoch_top1": 195,
            "balanced_acc": 0.8,
            "top1_lossless": 0.851,
            "seconds_per_epoch": 0.5,
        },
    }
    (tmp_path / "records.jsonl").write_text(json.dumps(rec) + "\n")
    # an unfinished member: its curve's last evaluation, the test score at its curve's best
    # VALIDATION epoch (epoch 10, although epoch 15 has the best test score)
    curve = [
        {"epoch": 5, "top1": 0.3, "val_top1": 0.2},
        {"epoch": 10, "top1": 0.5, "val_top1": 0.6},
        {"epoch": 15, "top1": 0.7, "val_top1": 0.5},
    ]
    (tmp_path / "metrics" / "margin__s0.jsonl").write_text(
        "".join(json.dumps(c) + "\n" for c in curve) + '{"epoch": 20, "to'
    )
    (tmp_path / "metrics" / "none__s0.jsonl").write_text(json.dumps(curve[0]) + "\n")
    gaps = {"none__s0": {"acc_jpeg": 0.83, "gap": 0.021, "gap_ci": [0.005, 0.037]}}
    (tmp_path / "meta" / "gaps.json").write_text(json.dumps(gaps))
    (tmp_path / "meta" / "phases.tsv").write_text("smoke\t41.20\t0\n")
    text = rt.tables(tmp_path, 84.3)
    rows = {ln.split(" | ")[0][2:]: ln for ln in text.splitlines() if ln.startswith("| ")}
    none = rows["none__s0"].split(" | ")
    assert none[1:6] == ["ok", "81.23", "82.00 (195)", "80.00", "- (-)"]
    assert none[6:9] == ["85.10", "83.00", "2.10 [0.50, 3.70]"] and none[-1] == "84.3 |"
    margin = rows["margin__s0"].split(" | ")
    assert margin[1:4] == ["unfinished (epoch 15)", "70.00", "50.00 (10)"]
    assert rows["smoke"] == "| smoke | 41.20 | 0 |"
    assert rt.main([str(tmp_path / "absent")]) == 2


def test_the_sync_loop_syncs_once_more_and_ends_when_its_parent_is_gone(tmp_path):
    ab = _load("ablation")
    d, _ = _fake_study(tmp_path, ab, n_members=1, width=10)
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    out = tmp_path / "OUT"
    loop = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "gpu" / "ablation.py"),
            "sync",
            "--study-dir",
            str(d),
            "--out",
            str(out),
            "--every",
            "0.2",
            "--parent",
            str(parent.pid),
        ],
        cwd=ROOT,
    )
    deadline = time.time() + 30
    while not (out / "ckpt.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    (d / "records.jsonl").write_text("changed\n")  # written after the last periodic sync
    parent.kill()
    parent.wait()
    assert loop.wait(30) == 0
    back = tmp_path / "back"
    assert ab.restore(out, back)["study"]
    assert (back / "records.jsonl").read_text() == "changed\n"
