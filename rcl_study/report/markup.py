"""Render a report's blocks as Markdown or as one self-contained HTML page.

A block is a tuple: ``("h", level, text)``, ``("p", text)``, ``("ul", items)``,
``("table", header, rows)``, ``("img", relative_path, alt)`` or ``("code", text)``. Text may use
``**bold**`` and ```code```; a string from a study file or a record goes into such text through
:func:`lit`, which backslash-escapes the characters Markdown (and GitHub's ``$`` maths) would read
as markup, so it renders as itself in both renderers. Table cells and headings are plain text:
escaped here; a code block gets a fence longer than any run of backticks in it.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

Block = tuple

#: the characters :func:`lit` escapes (each may be backslash-escaped in CommonMark)
MD_SPECIAL = "\\`*_[]<>|$~&#"
_SPECIAL = re.compile("_+|[" + re.escape(MD_SPECIAL.replace("_", "")) + "]")
_ESCAPED = re.compile("\\\\([" + re.escape(MD_SPECIAL) + "])")


def lit(text: object) -> str:
    """``text`` as literal Markdown: markup characters backslash-escaped, line breaks as spaces."""
    s = " ".join(str(text).splitlines()) if text is not None else "None"

    def escape(m: re.Match) -> str:
        tok, start, end = m.group(0), m.start(), m.end()
        # kept as is: "_" inside a word (balanced_acc, a__s0) is never emphasis; "[" and a "]"
        # not followed by "(" or "[" make no link (the document defines no link references)
        if tok[0] == "_":
            inword = 0 < start and end < len(s) and s[start - 1].isalnum() and s[end].isalnum()
            return tok if inword else "\\_" * len(tok)
        if tok == "[" or (tok == "]" and s[end : end + 1] not in ("(", "[")):
            return tok
        return "\\" + tok

    return _SPECIAL.sub(escape, s)


def code(text: object) -> str:
    """``text`` as one inline code span that shows it as itself (paths, commands).

    Markdown reads no escape inside a code span, so :func:`lit` is not applied; instead the
    fence is one backtick longer than any run of backticks in ``text``, padded with a space
    where ``text`` starts or ends with a backtick or a space (CommonMark strips one space each
    side); line breaks become spaces. :func:`to_html` reads such spans the same way.
    """
    s = " ".join(str(text).splitlines()) if text is not None else "None"
    longest = max((len(m) for m in re.findall("`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s[:1] in ("`", " ") or s[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in ``text`` (at least three)."""
    longest = max((len(m) for m in re.findall("`+", text)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(blocks: list[Block]) -> str:
    """The blocks as Markdown (readable on a code host)."""
    out = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            out.append("#" * blk[1] + " " + lit(blk[2]))
        elif kind == "p":
            out.append(blk[1])
        elif kind == "ul":
            out.append("\n".join(f"- {x}" for x in blk[1]))
        elif kind == "table":
            header, rows = blk[1], blk[2]
            lines = ["| " + " | ".join(map(lit, header)) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(map(lit, r)) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{lit(blk[2])}]({blk[1]})")
        elif kind == "code":
            fence = _fence(blk[1])
            out.append(fence + "\n" + blk[1] + "\n" + fence)
    return "\n\n".join(out) + "\n"


_TOKEN = re.compile("\\\\([" + re.escape(MD_SPECIAL) + "])|(`+)")


def _code_span(text: str, start: int, run: str) -> tuple[str, int] | None:
    """(content, end) of the code span opened by ``run`` at ``start``, None when unclosed."""
    close = re.compile("(?<!`)" + run + "(?!`)").search(text, start)
    if close is None:
        return None
    body = text[start : close.start()]
    if len(body) >= 2 and body[0] == " " and body[-1] == " " and body.strip():
        body = body[1:-1]
    return body, close.end()


def _inline(text: str) -> str:
    """``**bold**``, code spans (any fence length) and :func:`lit`'s escapes as HTML.

    Read left to right as CommonMark does: an escaped character is itself, a backtick run opens
    a code span closed by a run of the same length (no escapes inside), the rest is text.
    """
    text = text.replace("\ue000", "").replace("\ue001", "")
    kept: list[str] = []
    plain: list[str] = []

    def keep(html_text: str) -> None:
        kept.append(html_text)
        plain.append(f"\ue000{len(kept) - 1}\ue001")

    i = 0
    while i < len(text):
        m = _TOKEN.search(text, i)
        if m is None:
            plain.append(text[i:])
            break
        plain.append(text[i : m.start()])
        if m.group(1) is not None:
            keep(html.escape(m.group(1)))
            i = m.end()
            continue
        span = _code_span(text, m.end(), m.group(2))
        if span is None:
            keep(html.escape(m.group(2)))
            i = m.end()
        else:
            keep(f"<code>{html.escape(span[0])}</code>")
            i = span[1]
    parts = html.escape("".join(plain)).split("**")
    out = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    return re.sub("\ue000(\\d+)\ue001", lambda m: kept[int(m.group(1))], out)


def to_html(blocks: list[Block], report_dir: Path, title: str) -> str:
    """The blocks as one HTML page, figures embedded (PNG as data URIs)."""
    body = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            body.append(f"<h{blk[1]}>{html.escape(blk[2])}</h{blk[1]}>")
        elif kind == "p":
            body.append(f"<p>{_inline(blk[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in blk[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in blk[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in blk[2]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((report_dir / blk[1]).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(blk[2])}" src="data:image/png;base64,{data}">')
        elif kind == "code":
            body.append(f"<pre><code>{html.escape(blk[1])}</code></pre>")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "th{background:#f0f0f0}img{max-width:100%}pre{background:#f6f6f6;padding:1em;"
        "overflow-x:auto;font-size:0.8em}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
