"""The folders of a study as the runner prepares them (``rcl_study.study.runner.prepare_folder``).

Rows of FOLDER_CASES point a study's folders somewhere they must not be: ``--overwrite`` is
refused in one line naming the key, and nothing anywhere is written or deleted; over the study's
own folders it moves the old study aside. Rows of HOME_CASES name a folder with ``~``: the folder
the toolkit checks is the folder it writes (under the home folder, never a literal ``~`` in the
working folder). Rows of GIT_CASES name a folder inside a ``.git`` folder: refused, one line,
nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from rcl_study import run
from rcl_study.config import ConfigError
from rcl_study.store import MARKER
from rcl_study.study.checks import check_folders
from rcl_study.study.runner import prepare_folder
from tests.conftest import TINY_STUDY
from tests.helpers.study_text import study


def _record(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.jsonl").write_text(json.dumps({"trial_id": "x", "status": "ok"}) + "\n")


class FolderCase(NamedTuple):
    """A study whose folders point somewhere they must not; ``setup`` fills the sandbox."""

    name: str
    dotted: dict[str, Any]
    setup: Any  # (cwd) -> None
    needle: str


FOLDER_CASES = [
    FolderCase("name .. with records in cwd", {"name": ".."}, lambda c: _record(c), "name"),
    FolderCase(
        "output_dir . with records",
        {"study__output_dir": "."},
        lambda c: _record(c),
        "study.output_dir",
    ),
    FolderCase(
        "output_dir .. (a parent)",
        {"study__output_dir": ".."},
        lambda c: _record(c.parent),
        "study.output_dir",
    ),
    FolderCase(
        "output_dir holds unrelated files",
        {"study__output_dir": "mine"},
        lambda c: _record(c / "mine"),
        "did not write",
    ),
    FolderCase(
        "report.dir .",
        {"report": {"dir": "."}},
        lambda c: _claimed(c / "runs" / "adv", "adv"),
        "report.dir",
    ),
    FolderCase(
        "report.dir holds unrelated files",
        {"report": {"dir": "mine"}},
        lambda c: _record(c / "runs" / "adv"),
        "did not write",
    ),
    FolderCase(
        "output_dir of another study",
        {"study__output_dir": "other"},
        lambda c: _marked(c / "other", "someone"),
        "belongs to study 'someone'",
    ),
]


def _claimed(folder: Path, name: str) -> None:
    _record(folder)
    (folder / ".rcl_study").write_text(json.dumps({"study": name}))


def _marked(folder: Path, name: str) -> None:
    _record(folder)
    (folder / ".rcl_study").write_text(json.dumps({"study": name}))
    (folder / "SENTINEL").unlink()


@pytest.mark.parametrize("case", FOLDER_CASES, ids=[c.name for c in FOLDER_CASES])
def test_overwrite_never_deletes_outside_the_study(case, tmp_path, monkeypatch, capsys, no_ray):
    cwd = tmp_path / "sandbox" / "work"
    cwd.mkdir(parents=True)
    for folder in (tmp_path / "sandbox", cwd, cwd / "mine", cwd / "other"):
        folder.mkdir(exist_ok=True)
        (folder / "SENTINEL").write_text("keep me")
    case.setup(cwd)
    path = cwd / "study.yaml"
    path.write_text(study(**case.dotted))
    monkeypatch.chdir(cwd)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert run.main([str(path), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err, err
    assert case.needle in err.replace(str(tmp_path), "<tmp>"), err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == files


def test_overwrite_moves_the_old_study_aside_and_deletes_nothing(tmp_path, monkeypatch):
    from rcl_study.config import parse_study
    from rcl_study.store import atomic_write_text
    from rcl_study.study.runner import prepare_folder
    from rcl_study.trials.folder import StudyFolder

    monkeypatch.chdir(tmp_path)
    cfg = parse_study(yaml.safe_load(study()))
    out = prepare_folder(cfg, overwrite=False)
    marker = json.loads((out / ".rcl_study").read_text())
    assert marker == {"study": "adv"}
    StudyFolder(out).append({"trial_id": "x", "status": "ok"})  # through the toolkit's writers
    atomic_write_text(out / "trials" / "t" / "config.json", "{}")
    (out / "notes.txt").write_text("mine")
    (out / "records.damaged.jsonl").write_text("{")  # a toolkit-like name the user made
    (out / "study.lock").write_text("1 host")
    rep = tmp_path / "reports" / "adv"
    rep.mkdir(parents=True)
    (rep / ".rcl_study").write_text(json.dumps({"study": "adv", "manifest": ".rcl_study.files"}))
    atomic_write_text(rep / "index.md", "old")
    (rep / "my.txt").write_text("mine")
    prepare_folder(cfg, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [".rcl_study"]
    assert sorted(p.name for p in rep.iterdir()) == []
    (old_out,) = out.parent.glob("adv.replaced-*")
    (old_rep,) = rep.parent.glob("adv.replaced-*")
    assert sorted(p.name for p in old_out.iterdir()) == [
        ".rcl_study",
        "notes.txt",
        "records.damaged.jsonl",
        "records.jsonl",
        "study.lock",
        "trials",
    ]
    assert (old_out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in old_rep.iterdir()) == [".rcl_study", "index.md", "my.txt"]


def test_folder_from_before_markers_is_refused(tmp_path, monkeypatch):
    from rcl_study.config import ConfigError, parse_study
    from rcl_study.study.checks import check_folders, check_run_folders

    monkeypatch.chdir(tmp_path)
    cfg = parse_study(yaml.safe_load(study()))
    _record(tmp_path / "runs" / "adv")
    (tmp_path / "runs" / "adv" / "plan.json").write_text("{}")
    with pytest.raises(ConfigError, match="did not write"):
        check_run_folders(cfg, resume=True, overwrite=False)
    with pytest.raises(ConfigError, match="did not write"):
        check_folders(cfg)
    assert not (tmp_path / "runs" / "adv" / ".rcl_study").exists()


ROOT = Path(__file__).resolve().parents[2]


HOME_CASES = [
    ("~/out", None, "out"),
    ("~/a/../out", None, "out"),
    ("~/deep/er/out", None, "deep/er/out"),
    (None, "~/rep", None),
]


@pytest.mark.parametrize("out,rep,where", HOME_CASES)
def test_a_tilde_folder_is_written_where_it_was_checked(tmp_path, monkeypatch, out, rep, where):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    cfg = TINY_STUDY.parse(name="paths", study={"output_dir": out}, report={"dir": rep})
    if out is not None:
        made = prepare_folder(cfg, overwrite=False)
        assert made.resolve() == (home / where).resolve()
        assert (home / where / MARKER).is_file()
    else:
        assert cfg.report_dir.resolve() == (home / "rep").resolve()
    assert not (work / "~").exists()  # no literal "~" folder in the working folder
    assert "~" not in str(cfg.output_dir) and "~" not in str(cfg.report_dir)


def git_cases(tmp: Path) -> list[tuple[str, dict]]:
    """(name, study sections) naming a folder inside a .git folder."""
    return [
        ("the checkout's .git", {"study": {"output_dir": str(ROOT / ".git" / "runs-x")}}),
        ("a repository's .git", {"study": {"output_dir": str(tmp / "repo" / ".git" / "objects")}}),
        ("relative .git", {"study": {"output_dir": ".git/runs"}}),
        ("report in .git", {"report": {"dir": str(tmp / "repo" / ".git" / "rep")}}),
        ("through ..", {"study": {"output_dir": str(tmp / "repo" / "x" / ".." / ".git")}}),
    ]


GIT_NAMES = [name for name, _ in git_cases(Path("/tmp"))]


@pytest.mark.parametrize("name", GIT_NAMES)
def test_a_folder_inside_git_is_refused(tmp_path, monkeypatch, name):
    sections = dict(git_cases(tmp_path))[name]
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    before = sorted(p.name for p in (tmp_path / "repo" / ".git").iterdir())
    git_before = (
        sorted(p.name for p in (ROOT / ".git").iterdir()) if (ROOT / ".git").is_dir() else []
    )
    cfg = TINY_STUDY.parse(name="paths", **sections)
    with pytest.raises(ConfigError, match=r"\.git") as err:
        check_folders(cfg)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in (tmp_path / "repo" / ".git").iterdir()) == before
    if git_before:
        assert sorted(p.name for p in (ROOT / ".git").iterdir()) == git_before
