"""Every user-derived string of a report renders as itself.

Table-driven: each nasty string goes at once into every slot a study file or a record fills (a
grid value and so the variant names and the baseline, the question, a secondary analysis's name
is a pattern so not there, a failed trial's reason, the worker's host, the study file's path, the
records folder's path) and the report must show it as itself: no HTML tag, no maths, no code span
or fence, no table cell opened by it, in Markdown and in HTML.
"""

import html
import re
import shlex

import pytest

from rcl_study.config import parse_study
from rcl_study.report.markup import MD_SPECIAL, code, to_html, to_markdown
from rcl_study.report.render import write_report
from rcl_study.trials.folder import StudyFolder
from tests.report.test_report import _record

NASTY = [
    "<script>alert(1)</script>",
    "a\n```\nb",
    "a|b",
    "$x$",
    "`tick`",
    "``two``",
    "*star* _under_",
]


def _unescape(md: str) -> str:
    return re.sub(r"\\([" + re.escape(MD_SPECIAL) + "])", r"\1", md)


def _itself(text: str) -> str:
    return " ".join(text.splitlines())


def _outside_code(md: str) -> str:
    """The Markdown text without fenced code blocks, code spans and backslash escapes."""
    out, lines, fence = [], md.split("\n"), None
    for line in lines:
        if fence is None and re.match(r"^`{3,}$", line):
            fence = line
            continue
        if fence is not None:
            if line == fence:
                fence = None
            continue
        out.append(line)
    text = re.sub(r"\\.", "", "\n".join(out))
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text)


def _report(tmp_path, nasty):
    runs = tmp_path / f"runs {nasty}"
    values = [nasty, "plain"]
    for i, v in enumerate(values):
        for seed in (0, 1, 2):
            r = _record(f"v{i}__s{seed}", f"data.path={v}", seed, {"data.path": v}, 0.5 + i / 10)
            r["host"] = nasty
            StudyFolder(runs).append(r)
    failed = _record("v0__s3", f"data.path={nasty}", 3, {"data.path": nasty}, 0, "failed")
    failed["reason"] = failed["host"] = nasty
    StudyFolder(runs).append(failed)
    StudyFolder(runs).write_plan([{"trial_id": f"p{i}"} for i in range(7)], {})
    cfg = parse_study(
        {
            "name": "syn",
            "data": {"dataset": "digits_lt"},
            "study": {
                "kind": "grid",
                "grid": {"data.path": values},
                "seeds": [0, 1, 2],
                "output_dir": str(runs),
            },
            "report": {
                "dir": str(tmp_path / "report"),
                "question": f"Is {nasty} better?",
                "baseline": f"data.path={nasty}",
            },
        }
    )
    study_path = f"studies/{nasty}.yaml"
    path = write_report(cfg, study_path, runs, tmp_path / "report")
    return path.read_text(), (tmp_path / "report" / "index.html").read_text(), study_path, runs


@pytest.mark.slow
@pytest.mark.parametrize("nasty", NASTY)
def test_every_user_string_renders_as_itself(tmp_path, nasty):
    md, page, study_path, runs = _report(tmp_path, nasty)
    # Markdown: the nasty string is never markup outside code (no tag, maths, code, emphasis)
    prose = _outside_code(md)
    for bad in ("<script>", "$x$", "*star*", "_under_", "tick`"):
        assert bad not in prose
    for line in prose.splitlines():  # a "|" of a user string never opens a table cell
        if not line.startswith("|"):
            assert "|" not in line, line
    # exactly one fenced block (the reproduce commands), its fence longer than any run in it
    fence = next(line for line in md.split("\n") if re.match(r"^`{3,}$", line))
    content, _, after = md.partition(fence + "\n")[2].partition("\n" + fence + "\n")
    assert after and "`" * len(fence) not in content
    assert "```" not in _outside_code(md)  # no other fence: no block opened by a user string
    # the question and the regenerate command read back as themselves
    q = next(line for line in md.splitlines() if line.startswith("**Question.**"))
    assert _unescape(q) == f"**Question.** Is {_itself(nasty)} better?"
    regen = "python -m rcl_study.run " + shlex.quote(study_path) + " --report-only"
    assert f"Regenerate this report without training: {code(regen)}." in md
    assert code(f"{runs}/records.jsonl") in md
    # HTML: no tag from a user string, each slot shows the text itself
    assert "<script>" not in page
    assert f"<p><b>Question.</b> Is {html.escape(_itself(nasty))} better?</p>" in page
    assert f"<code>{html.escape(_itself(regen))}</code>" in page
    assert f"<td>{html.escape(f'data.path={nasty}')}</td>" in page  # the variant's cell
    assert f"host {html.escape(_itself(nasty))};" in page  # where the numbers came from


@pytest.mark.parametrize("text", ["`a`", "``", "a ` b", " x ", "`", "a\nb", "$x$ <b>|"])
def test_a_code_span_reads_back_as_its_text_in_both(tmp_path, text):
    span = code(text)
    md = to_markdown([("p", f"see {span}.")]).strip()
    fence = re.match(r"see (`+)", md).group(1)
    body = md[len("see ") + len(fence) : -len(fence) - 1]
    if body.startswith(" ") and body.endswith(" ") and body.strip():
        body = body[1:-1]  # CommonMark strips one space each side
    assert body == _itself(text)
    page = to_html([("p", f"see {span}.")], tmp_path, "t")
    assert f"<p>see <code>{html.escape(_itself(text))}</code>.</p>" in page
