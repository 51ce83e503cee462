"""Each record says where it ran (the worker's host, device, versions); the report states it."""

from rcl_study.report.provenance import provenance_block
from rcl_study.study.execute import worker_environment
from rcl_study.study.recording import make_record
from rcl_study.trainer.result import TrialResult
from rcl_study.trials.records import TrialPlan, TrialRecord, TrialStatus


def _rec(tid, host, device, torch="2.14.1", rev="abcdef0123456789"):
    return TrialRecord(
        trial_id=tid,
        status=TrialStatus.OK,
        host=host,
        versions={"torch": torch},
        git_rev=rev,
        hardware={"device_name": device, "cuda": None, "cudnn": None},
    )


def test_one_sentence_when_all_trials_agree():
    kind, text = provenance_block([_rec("a", "n1", "AMD EPYC"), _rec("b", "n1", "AMD EPYC")])
    assert kind == "p"
    assert text == (
        "**Where the numbers came from.** All 2 trials: host n1; device AMD EPYC; "
        "torch 2.14.1; CUDA -; cuDNN -; commit abcdef012345."
    )


def test_a_table_row_per_setting_when_they_differ():
    recs = [_rec("a", "n1", "cpu"), _rec("b", "n2", "NVIDIA H200"), _rec("c", "n2", "NVIDIA H200")]
    kind, header, rows = provenance_block(recs)
    assert kind == "table" and header[-1] == "trials"
    assert rows == [
        ["n1", "cpu", "2.14.1", "-", "-", "abcdef012345", "1"],
        ["n2", "NVIDIA H200", "2.14.1", "-", "-", "abcdef012345", "2"],
    ]


def test_the_record_keeps_the_environment_the_worker_sent():
    sent = {
        "versions": {"torch": "9.9"},
        "python": "3.99",
        "host": "worker-7",
        "git_rev": "feed",
        "hardware": {"device_name": "NVIDIA H200", "cuda": "13.0", "cudnn": "91000"},
    }
    result = TrialResult(status=TrialStatus.OK, metrics={"top1": 0.5}, environment=sent)
    plan = TrialPlan("a__s0", "a", 0, {})
    rec = make_record(plan, {}, result, 1.0)
    assert rec.host == "worker-7" and rec.hardware["device_name"] == "NVIDIA H200"
    assert rec.versions == {"torch": "9.9"} and "environment" not in rec.metrics
    assert TrialRecord.from_json(rec.to_json()) == rec


def test_worker_environment_on_this_cpu():
    env = worker_environment("cpu")
    assert env["hardware"]["cuda"] is None and env["hardware"]["device_name"]
    assert env["versions"]["torch"] and env["host"]
