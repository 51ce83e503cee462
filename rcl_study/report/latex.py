"""``tables.tex``: a report's tables as LaTeX booktabs tabulars, to paste into a paper.

Every cell is plain text from the report's tables, escaped so LaTeX prints it as itself; the
file needs the ``booktabs`` package.
"""

from __future__ import annotations

from rcl_study.report.markup import Block

#: LaTeX's special characters and how each is printed as itself
_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def escape(text: object) -> str:
    """``text`` as LaTeX that prints it as itself (line breaks as spaces)."""
    s = " ".join(str(text).splitlines())
    return "".join(_ESCAPES.get(c, c) for c in s)


def tabular(caption: str, block: Block) -> str:
    """One table block as a booktabs ``table`` (top, middle and bottom rules)."""
    _, head, rows = block
    cols = "l" + "r" * (len(head) - 1)
    line = " & ".join
    body = [f"  {line(escape(c) for c in row)} \\\\" for row in rows]
    return "\n".join(
        [
            "\\begin{table}[ht]",
            "\\centering",
            f"\\caption{{{escape(caption)}}}",
            f"\\begin{{tabular}}{{{cols}}}",
            "\\toprule",
            f"  {line(escape(c) for c in head)} \\\\",
            "\\midrule",
            *body,
            "\\bottomrule",
            "\\end{tabular}",
            "\\end{table}",
        ]
    )


def tables_tex(study: str, tables: list[tuple[str, Block]]) -> str:
    """The file ``tables.tex``: each ``(caption, table block)`` as a booktabs table."""
    header = [
        f"% Tables of study {' '.join(study.splitlines())}, written by rcl_study with its report.",
        "% Needs \\usepackage{booktabs}.",
    ]
    return "\n\n".join(["\n".join(header), *(tabular(c, b) for c, b in tables)]) + "\n"
