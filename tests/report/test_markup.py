"""Report text renders as itself (``rcl_study.report.markup``).

Each row of TEXTS is a string a study file or a record may hold (a variant name, a grid value, a
question). In a Markdown table, heading or sentence it must read back as itself (after
CommonMark's backslash unescaping), in HTML as itself after entity unescaping, in a code block
inside one fence.
"""

from __future__ import annotations

import html
import re

import pytest

from rcl_study.report.markup import MD_SPECIAL, lit, to_html, to_markdown

TEXTS = [
    "a|b",
    "balanced_acc [95% CI]",
    "![img](x.png)",
    "[ref][x]",
    "**bold**",
    "_under_",
    "`tick`",
    "<script>alert(1)</script>",
    "[link](http://example.com)",
    "$x^2$",
    "$\\frac{$",
    "back\\slash\\*",
    "&amp; entity",
    "# not a heading",
    "~~strike~~",
    "two\nlines",
]


def unescape(md: str) -> str:
    """CommonMark's backslash unescaping of the characters :func:`lit` escapes."""
    return re.sub(r"\\([" + re.escape(MD_SPECIAL) + "])", r"\1", md)


def bare(md: str) -> str:
    """``md`` without its backslash-escaped characters: what Markdown would read as markup."""
    return re.sub(r"\\.", "", md)


def itself(text: str) -> str:
    """What the text must render as (a line break reads as a space in one line of Markdown)."""
    return " ".join(text.splitlines())


@pytest.mark.parametrize("text", TEXTS)
def test_a_table_cell_and_a_heading_read_back_as_themselves(tmp_path, text):
    md = to_markdown([("h", 2, text), ("table", ["variant", text], [[text, "0.5"]])])
    heading, head, rule, row = [x for x in md.strip().split("\n") if x]
    assert unescape(heading[3:]) == itself(text)
    cells = re.split(r"(?<!\\) \| ", row.strip()[2:-2])
    assert [unescape(c) for c in cells] == [itself(text), "0.5"]
    left = bare(cells[0])  # nothing left as markup: no emphasis, code, tag, link, maths
    assert not re.search(r"[`*<>$|~&]|\]\(|\]\[|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])", left)
    page = to_html([("table", ["h"], [[text]])], tmp_path, "t")
    assert html.escape(text) in page


@pytest.mark.parametrize("text", TEXTS)
def test_a_sentence_with_lit_renders_as_itself_in_both(tmp_path, text):
    sentence = f"**Best** {lit(text)} by mean"
    md = to_markdown([("p", sentence)])
    assert unescape(md.strip()) == f"**Best** {itself(text)} by mean"
    page = to_html([("p", sentence)], tmp_path, "t")
    body = re.search(r"<p>(.*)</p>", page).group(1)
    assert body == f"<b>Best</b> {html.escape(itself(text))} by mean"


CODE = ["```", "a\n```\nb", "````x````", "` ``` `"]


@pytest.mark.parametrize("text", CODE)
def test_a_code_block_is_one_fence_whatever_it_holds(text):
    md = to_markdown([("code", text)]).strip()
    fence = re.match(r"`+", md).group(0)
    assert md == f"{fence}\n{text}\n{fence}"
    assert fence not in text  # the fence never closes inside the text
