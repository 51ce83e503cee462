"""scripts/gpu: the metrics log a killed run leaves, and the smoke check's choice of CUDA tests."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
    assert "tests/test_augment.py::test_cpu_and_gpu_agree_in_distribution" in ids
    assert "tests/test_augment.py::test_crop_keeps_content_and_zero_pads" not in ids
    assert all(Path(ROOT / i.split("::")[0]).is_file() for i in ids)
