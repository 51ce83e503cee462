"""One resolution of each user path (issue 23, class 3).

Rows of HOME_CASES name a folder with ``~``: the folder the toolkit checks is the folder it
writes (under the home folder, never a literal ``~`` in the working folder). Rows of GIT_CASES
name a folder inside a ``.git`` folder: refused, one line, nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rcl_study.config import ConfigError
from rcl_study.store import MARKER
from rcl_study.study.checks import check_folders
from rcl_study.study.runner import prepare_folder
from tests.conftest import TINY_STUDY

ROOT = Path(__file__).resolve().parents[1]

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
