"""The schema honours a value or refuses it: no value accepted and then ignored or unwritable.

Each row is a study the toolkit could not honour as written; each must be refused before any
work, from the study file through ``python -m rcl_study.run STUDY --dry-run``, in one line
(exit 2) naming the key:

- DEPENDENT: a key read only with another (``rcl_study.config.dependent``), set without it;
- FINITE: a float that is not finite, or out of its range, inside a mapping or a list;
- TEXT: text that cannot be written as UTF-8 (a lone surrogate), in any string of the schema;
- SAME: a grid whose arms differ only in values no trial reads, or in identical values.

The controls (ACCEPTED) are the same keys where they are read: they still plan.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import pytest
import yaml

from rcl_study.config import ConfigError, study_section
from rcl_study.config.base import first_repeat, same_value, trial_key
from rcl_study.run import main
from rcl_study.trials.design import expand
from tests.conftest import TINY_STUDY
from tests.report.test_report import _record

NAN, INF = float("nan"), float("inf")


class Case(NamedTuple):
    """A study (sections over the tiny study), extra command-line words, the words of the error."""

    name: str
    sections: dict[str, Any]
    needles: tuple[str, ...]
    argv: tuple[str, ...] = ()


def grid(values: dict[str, list[Any]], **loss: Any) -> dict[str, Any]:
    """A grid study over ``values`` (one seed), the loss section updated with ``loss``."""
    return {"loss": loss, "study": {"kind": "grid", "seeds": [0], "grid": values}}


DEPENDENT = [
    Case(
        "classification_params without classification",
        {"loss": {"classification_params": {"tau": 2.0}}},
        ("loss.classification_params", "loss.classification"),
    ),
    Case(
        "tau_la under a preset without logit adjustment",
        {"loss": {"preset": "ce", "balance": None, "scale": None, "margin": None, "tau_la": 2}},
        ("loss.tau_la", "logit"),
    ),
    Case(
        "tau_la beside a classification loss that replaces LA-CE",
        {"loss": {"classification": "cross_entropy", "tau_la": 0.5}},
        ("loss.tau_la",),
    ),
    Case(
        "tau_la with logit_adjust switched off",
        {"loss": {"logit_adjust": False, "tau_la": 1.5}},
        ("loss.tau_la",),
    ),
    Case(
        "mlflow_uri without the mlflow tracker",
        {"resources": {"mlflow_uri": "sqlite:///m.db"}},
        ("resources.mlflow_uri", "mlflow"),
    ),
    Case(
        "classification_params given by --set alone",
        {},
        ("loss.classification_params",),
        ("--set", "loss.classification_params={tau: 2.0}"),
    ),
]

FINITE = [
    Case(
        "NaN inside classification_params",
        {"loss": {"classification": "logit_adjusted", "classification_params": {"tau": NAN}}},
        ("loss.classification_params", "finite", "tau"),
    ),
    Case(
        "1e300 inside classification_params",
        {"loss": {"classification": "logit_adjusted", "classification_params": {"tau": 1e300}}},
        ("loss.classification_params.tau", "less than or equal"),
    ),
    Case(
        "-inf inside classification_params",
        {"loss": {"classification": "logit_adjusted", "classification_params": {"tau": -INF}}},
        ("loss.classification_params", "finite"),
    ),
    Case(
        "a boolean inside classification_params",
        {"loss": {"classification": "logit_adjusted", "classification_params": {"tau": True}}},
        ("loss.classification_params", "boolean"),
    ),
    Case("NaN in a grid's values", grid({"loss.scale": [1.0, NAN]}), ("study.grid", "finite")),
    Case("inf in a grid's values", grid({"loss.margin": [0.0, INF]}), ("study.grid", "finite")),
    Case(
        "NaN among a search's choices",
        {
            "study": {
                "kind": "search",
                "seeds": [0],
                "n_trials": 2,
                "space": {"loss.scale": {"type": "categorical", "choices": [1.0, NAN]}},
            }
        },
        ("study.space", "finite"),
    ),
    Case(
        "NaN inside a mapping given by --set",
        {"loss": {"classification": "logit_adjusted"}},
        ("loss.classification_params", "finite"),
        ("--set", "loss.classification_params={tau: .nan}"),
    ),
]

TEXT = [
    Case("study.output_dir", {"study": {"output_dir": "out\udc80"}}, ("study.output_dir", "UTF-8")),
    Case("data.root", {"data": {"root": "r\udc80"}}, ("data.root", "UTF-8")),
    Case("report.question", {"report": {"question": "why\udc80?"}}, ("report.question", "UTF-8")),
    Case(
        "a secondary analysis's question",
        {"report": {"secondary": [{"name": "s", "baseline": "none", "question": "q\udcff"}]}},
        ("report.secondary", "UTF-8"),
    ),
    Case(
        "a grid's text value",
        grid({"loss.classification": ["cross_entropy", "x\udc80"]}),
        ("study.grid", "UTF-8"),
    ),
    Case("report.dir by --set", {}, ("report.dir", "UTF-8"), ("--set", "report.dir=d\udc80")),
]

SAME = [
    Case(
        "a grid over classification_params without classification",
        grid({"loss.classification_params": [{"tau": 1.0}, {"tau": 2.0}]}),
        ("study.grid", "loss.classification_params"),
    ),
    Case(
        "classification x classification_params: two arms read no parameters",
        grid(
            {
                "loss.classification": [None, "logit_adjusted"],
                "loss.classification_params": [{}, {"tau": 2.0}],
            }
        ),
        ("study.grid", "train the same model"),
    ),
    Case(
        "logit_adjust x tau_la: two arms without logit adjustment",
        grid({"loss.logit_adjust": [False, True], "loss.tau_la": [1.0, 2.0]}),
        ("study.grid", "train the same model"),
    ),
    Case(
        "a grid over tau_la under the ce preset",
        grid({"loss.tau_la": [1.0, 2.0]}, preset="ce", balance=None, scale=None, margin=None),
        ("study.grid", "loss.tau_la"),
    ),
]

ACCEPTED = [
    Case(
        "classification_params with classification",
        {"loss": {"classification": "logit_adjusted", "classification_params": {"tau": 2.0}}},
        (),
    ),
    Case("tau_la under logit adjustment", {"loss": {"tau_la": 2.0}}, ()),
    Case(
        "params where some arms read them (classification varied)",
        grid(
            {"loss.classification": [None, "logit_adjusted"]},
            classification_params={"tau": 2.0},
        ),
        (),
    ),
    Case(
        "a grid over classification_params read by the classification loss",
        grid(
            {"loss.classification_params": [{"tau": 1.0}, {"tau": 2.0}]},
            classification="logit_adjusted",
        ),
        (),
    ),
    Case("mlflow_uri with mlflow", {"resources": {"tracking": ["mlflow"], "mlflow_uri": "x"}}, ()),
    Case("text with accents", {"report": {"question": "Ça marche, ümlaut?"}}, ()),
]


def _dry_run(tmp_path, monkeypatch, capsys, case: Case) -> tuple[int, str]:
    path = tmp_path / "adv.yaml"
    # a lone surrogate is written as a YAML escape ("\udc80"), as a hand-edited file may hold it
    path.write_text(yaml.safe_dump(TINY_STUDY(case.sections, name="adv"), sort_keys=False))
    monkeypatch.chdir(tmp_path)
    code = main([str(path), "--dry-run", *case.argv])
    return code, capsys.readouterr().err


def _refused_in_one_line(code: int, err: str, needles: tuple[str, ...]) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], err


REFUSED = [*DEPENDENT, *FINITE, *TEXT, *SAME]


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_a_value_the_toolkit_cannot_honour_is_refused_in_one_line(
    case, tmp_path, monkeypatch, capsys
):
    code, err = _dry_run(tmp_path, monkeypatch, capsys, case)
    _refused_in_one_line(code, err, case.needles)


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.name for c in ACCEPTED])
def test_the_same_keys_where_they_are_read_still_plan(case, tmp_path, monkeypatch, capsys):
    code, err = _dry_run(tmp_path, monkeypatch, capsys, case)
    assert code == 0, err


def test_the_refusal_comes_from_the_schema_too():
    """The notebook API (``parse_study``) refuses what the command line refuses."""
    with pytest.raises(ConfigError, match="loss.classification_params"):
        TINY_STUDY.parse(loss={"classification_params": {"tau": 2.0}})
    with pytest.raises(ConfigError, match="UTF-8"):
        TINY_STUDY.parse(data={"root": "\udc80"})


def test_a_report_over_a_mapping_valued_grid_key_builds(tmp_path, monkeypatch, capsys):
    """``--report-only`` of a grid over classification_params: a report, not a traceback."""
    raw = TINY_STUDY(
        grid(
            {"loss.classification_params": [{"tau": 1.0}, {"tau": 2.0}]},
            classification="logit_adjusted",
        ),
        name="cp",
    )
    raw["study"].update(seeds=[0, 1, 2], output_dir=str(tmp_path / "runs"))
    raw["report"] = {"dir": str(tmp_path / "report")}
    path = tmp_path / "cp.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    plans = expand(TINY_STUDY.parse(raw))
    lines = [
        _record(p.trial_id, p.variant, p.seed, p.overrides, 0.8 + 0.01 * p.seed) for p in plans
    ]
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "records.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    monkeypatch.chdir(tmp_path)
    code = main([str(path), "--report-only"])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err, err
    assert "report:" in out
    text = (tmp_path / "report" / "index.md").read_text()
    assert "tau" in text


# ----------------------------------------------------------------- duplicates found by hashing

SAME_VALUES = [
    (1, 1.0, True),
    (True, 1, False),
    (False, 0.0, False),
    ("1", 1, False),
    (None, 0, False),
    ({"tau": 1}, {"tau": 1.0}, True),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
    ({"tau": 1.0}, {"tau": 2.0}, False),
    ([160, 180], [160.0, 180], True),
    ([160, 180], [180, 160], False),
    ([], {}, False),
]


@pytest.mark.parametrize("a,b,same", SAME_VALUES, ids=[f"{a!r}-{b!r}" for a, b, _ in SAME_VALUES])
def test_same_value_keeps_its_meaning(a, b, same):
    assert same_value(a, b) is same and same_value(b, a) is same
    assert (first_repeat([a, b]) == 1) is same


def test_a_repeated_grid_value_is_named():
    with pytest.raises(ConfigError, match=r"value \{'tau': 1.0\} is listed twice"):
        TINY_STUDY.parse(
            grid(
                {"loss.classification_params": [{"tau": 1}, {"tau": 2}, {"tau": 1.0}]},
                classification="logit_adjusted",
            )
        )


def test_the_study_section_is_validated_once_per_run_not_per_trial(monkeypatch):
    """Planning a 100-point grid checks the grid's keys a fixed number of times, not per trial."""
    values = {
        "loss.scale": [1 + i / 10 for i in range(10)],
        "loss.margin": [i / 10 for i in range(10)],
    }
    cfg = TINY_STUDY.parse(grid(values))
    calls = []

    def counting(key):
        calls.append(key)
        return trial_key(key)

    monkeypatch.setattr(study_section, "trial_key", counting)
    assert len(expand(cfg)) == 100
    assert len(calls) <= 4 * len(values), len(calls)
