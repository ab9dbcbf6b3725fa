"""LaTeX escaping for table cells and captions, and the supervision-marker macros."""

from __future__ import annotations

from debiasbench.benchmark.paper.axes import DATASET_LABELS, DATASET_LATEX

_LATEX_CHARS = {
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
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"\ensuremath{\pm}",
    "—": "--",
    "–": "--",
    "Δ": r"\ensuremath{\Delta}",
    "○": r"\SupNone{}",
    "◐": r"\SupTailored{}",
    "●": r"\SupLabels{}",
    "‡": r"\ensuremath{^\ddagger}",
    "†": r"\ensuremath{^\dagger}",
    "×": r"\ensuremath{\times}",
    "…": r"\ldots{}",
    "¹": r"\textsuperscript{1}",
    "²": r"\textsuperscript{2}",
    "*": r"\textsuperscript{*}",
}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table or caption (one pass, so replacements never re-escape)."""
    return "".join(_LATEX_CHARS.get(char, char) for char in str(text))


LATEX_MARKERS = {"○": r"\SupNone", "◐": r"\SupTailored", "●": r"\SupLabels"}


def dataset_latex(dataset: str) -> str:
    return DATASET_LATEX.get(dataset) or latex_escape(DATASET_LABELS.get(dataset, dataset))


_MARKDOWN_SPECIAL = "\\`*_{}[]<>()#+-!|$"


def markdown_escape(text: str) -> str:
    """Untrusted text (a user's class name) as literal Markdown: every character Markdown or a
    table could read as syntax backslash-escaped, line breaks flattened."""
    flat = " ".join(str(text).splitlines())
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in flat)


def mathtext_escape(text: str) -> str:
    """Untrusted text as a literal matplotlib label ('$' would start mathtext)."""
    return str(text).replace("$", r"\$")
