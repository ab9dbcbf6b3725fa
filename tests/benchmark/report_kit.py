"""Shared by the report tests: the synthetic-store writers and the LaTeX structure check."""

import hashlib
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "report_golden"
_spec = importlib.util.spec_from_file_location("report_synthetic", FIXTURES / "synthetic.py")
syn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syn)


def _value(*parts) -> float:
    digest = int(hashlib.md5(repr(parts).encode()).hexdigest()[:6], 16)
    return round(0.2 + 0.7 * digest / 0xFFFFFF, 4)


def _controlled(ratio, difficulty, target, unbiased=False):
    return {"ratio": ratio, "difficulty": difficulty, "target": target, "unbiased_train": unbiased}


def check_latex(tex: str, n_columns: int) -> None:
    """Compile-ready structure: balanced braces and math, escaped specials, matching environments,
    the right number of cells per row."""
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    depth = 0
    for i, char in enumerate(body):
        escaped = i > 0 and body[i - 1] == "\\"
        if char == "{" and not escaped:
            depth += 1
        elif char == "}" and not escaped:
            depth -= 1
            assert depth >= 0, f"unbalanced '}}' at {i}: {body[max(0, i - 40) : i + 1]!r}"
    assert depth == 0, "unbalanced braces"
    assert not re.search(r"(?<!\\)_", body), "unescaped underscore"
    assert not re.search(r"(?<!\\)[%#]", body), "unescaped % or #"
    assert len(re.findall(r"(?<!\\)\$", body)) % 2 == 0, "unbalanced $"
    for env in ("table", "tabular"):
        assert body.count(rf"\begin{{{env}}}") == body.count(rf"\end{{{env}}}") == 1
    assert "..." not in body and "…" not in body, "truncated text"
    tabular = body.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    for line in tabular.splitlines():
        if line.strip() and line.strip() != r"\midrule":
            assert line.endswith(r"\\"), line
            assert len(re.findall(r"(?<!\\)&", line)) == n_columns - 1, line
