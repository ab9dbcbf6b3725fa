"""The docs stay true: every command in README.md and docs/*.md is valid bash, its flags and
parameter names exist in the real argparse parsers (built by the commands' own modules, so new flags
need no list here), every grid command resolves as a dry run, and every relative link and anchor
points at something that exists.

A command is a line of a fenced code block or an inline code span that starts with `python`,
`debiasbench` or `nice`. Values written as placeholders (STORE, DIR, HEAD:6379, path/to/...)
are accepted where a real value would be: they may fail a type or a file lookup, never a flag."""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import re
import runpy
import shlex
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from debiasbench._layout import FOLDERS as OLD_IMPORT_NAMES  # top-level import names before `debiasbench`

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "results" / "README.md"]

PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_]*(?::[0-9A-Z]+)?|.*path/to.*|\.\.\.|.*[A-Z]{2,}[A-Z_]*/.*)$")
# Errors that a placeholder value may cause (a type or a missing file), not a wrong flag.
PLACEHOLDER_ERRORS = ("invalid", "not found", "No such file", "does not exist", "cannot")


@dataclass(frozen=True)
class Command:
    source: str  # file:line
    text: str
    tokens: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.source}: {self.text}"


def _code_blocks(text: str) -> Iterator[tuple[int, str]]:
    """(line number, logical line) of every fenced block, continuations joined, comments dropped."""
    fence = None
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
            continue
        if fence is None or fence not in ("", "bash", "sh", "shell", "console"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        yield start, pending + stripped
        pending = ""


def _inline_spans(text: str) -> Iterator[tuple[int, str]]:
    """(line number, content) of inline code spans outside fenced blocks, across line breaks."""
    outside = []
    in_fence = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
            outside.append("")
            continue
        outside.append("" if in_fence else line)
    joined = "\n".join(outside)
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", joined):
        yield joined.count("\n", 0, match.start()) + 1, " ".join(match.group(1).split())


def _split_commands(line: str) -> Iterator[str]:
    for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
        if part.strip():
            yield part.strip()


def commands() -> list[Command]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for number, line in [*_code_blocks(text), *_inline_spans(text)]:
            for part in _split_commands(line):
                if re.match(r"(python|debiasbench|nice)\b", part):
                    try:
                        tokens = tuple(shlex.split(part, comments=True))
                    except ValueError as error:
                        tokens = ("<unparseable>", str(error))
                    found.append(Command(f"{path.relative_to(REPO)}:{number}", part, tokens))
    return found


def _program(tokens: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """(the module whose parser reads the arguments, the arguments), or (None, []) for commands of
    other tools (pip, pytest)."""
    tokens = list(tokens)
    for redirect in (">", ">>", "2>", "2>&1"):  # output redirections belong to the shell
        while redirect in tokens:
            at = tokens.index(redirect)
            del tokens[at : at + (1 if redirect == "2>&1" else 2)]
    while tokens and (re.match(r"^[A-Z_]+=", tokens[0]) or tokens[0] == "nice"):
        tokens = tokens[3:] if tokens[0] == "nice" and len(tokens) > 1 and tokens[1] == "-n" else tokens[1:]
    if tokens[:2] == ["python", "run_all.py"] or tokens[:3] == ["python", "-m", "debiasbench"]:
        return "run_all", tokens[3:] if tokens[1] == "-m" else tokens[2:]
    if tokens[:1] == ["debiasbench"]:
        return "run_all", tokens[1:]
    if tokens[:2] == ["python", "-m"] and len(tokens) > 2:
        assert tokens[2].split(".")[0] not in OLD_IMPORT_NAMES, f"`python -m {tokens[2]}`: now debiasbench.{tokens[2]}"
    if tokens[:2] == ["python", "-m"] and len(tokens) > 2 and tokens[2].startswith("debiasbench."):
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", tokens[2]):  # `tools....`: a family, not a module
            return None, []
        return tokens[2], tokens[3:]
    return None, []


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


class _ParseError(Exception):
    pass


@functools.cache
def parser_of(module: str) -> argparse.ArgumentParser | None:
    """The parser a module's command line builds, captured at its first parse_args call (None for a
    module that reads sys.argv itself and exits without arguments, like tools.peak_memory)."""

    def capture(self, args=None, namespace=None):
        raise _Captured(self)

    saved_argv = sys.argv
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", capture)
        patch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
        sys.argv = [module]
        try:
            # runpy warns when the module was imported before (by another command's check): harmless.
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                runpy.run_module(module, run_name="__main__", alter_sys=False)
        except _Captured as captured:
            return captured.parser
        except SystemExit:
            return None
        finally:
            sys.argv = saved_argv
    raise AssertionError(f"python -m {module} never parsed its arguments")


def parse(module: str, args: list[str]) -> argparse.Namespace | None:
    def error(self, message):
        raise _ParseError(message)

    parser = parser_of(module)
    if parser is None:
        return None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "error", error)
        patch.setattr(argparse.ArgumentParser, "exit", lambda self, status=0, message=None: None)
        return parser.parse_args(args)


def _has_placeholder(args: list[str]) -> bool:
    return any(PLACEHOLDER.match(value) for arg in args for value in arg.split("="))


def _example_methods() -> frozenset[str]:
    """Methods that the docs define in their own examples (README's `focal`): not registered here."""
    text = "".join(path.read_text(encoding="utf-8") for path in DOCS)
    return frozenset(re.findall(r'register_method\("(\w+)"\)', text))


ALL = commands()
EXAMPLE_METHODS = _example_methods()


def test_the_docs_hold_commands():
    assert len(ALL) > 80, "the extractor found too few commands: check the markdown parsing"
    assert any(c.tokens[:2] == ("python", "run_all.py") for c in ALL)


@pytest.mark.parametrize("command", ALL, ids=str)
def test_every_command_is_valid_bash(command):
    assert command.tokens[0] != "<unparseable>", f"{command}: {command.tokens[1]}"
    for token in command.tokens:
        assert not re.search(r"\{[^}]*,[^}]*\}", token), f"{command}: brace alternatives are not a command"
        assert not token.startswith("[--"), f"{command}: write the optional part as its own command"


@pytest.mark.parametrize("command", ALL, ids=str)
def test_every_flag_exists_and_every_grid_resolves(command, tmp_path):
    check_command(command, command.tokens, tmp_path)


def check_command(command: Command, tokens: tuple[str, ...], tmp_path: Path) -> None:
    module, args = _program(tokens)
    if module is None:
        return
    if "--" in args:  # a wrapper (tools.peak_memory -- CMD): check the wrapped command too
        check_command(command, tuple(args[args.index("--") + 1 :]), tmp_path)
    elided = "..." in args
    args = [a for a in args if a != "..."]
    try:
        parse(module, args)
    except _ParseError as error:
        message = str(error)
        placeholder = _has_placeholder(args) and message.startswith("argument") and "invalid" in message
        # `python -m debiasbench.benchmark.report` (or `benchmark.store compact`) named in prose, or a command
        # with its arguments elided: only its required arguments are missing.
        mention = message.startswith("the following arguments are required") and (elided or len(args) <= 1)
        assert placeholder or mention, f"{command}: {message}"
        return
    methods = set(",".join(args[i + 1] for i, a in enumerate(args[:-1]) if a == "--methods").split(","))
    if module == "run_all" and not _has_placeholder(args) and "--list" not in args and not methods & EXAMPLE_METHODS:
        dry_run(command, args, tmp_path)


def dry_run(command: Command, args: list[str], tmp_path: Path) -> None:
    """The command as `--dry-run` into a scratch store: it must resolve every trial it names."""
    from debiasbench import cli

    argv = [a for a in args if a not in ("--address",)]
    if "--address" in args:  # a dry run needs no cluster
        at = args.index("--address")
        argv = args[:at] + args[at + 2 :]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main([*argv, "--dry-run", "--results", str(tmp_path / "store")])
    text = out.getvalue()
    missing_data = code == 2 and any(s in text for s in ("not found", "No such file"))
    assert code == 0 or missing_data, f"{command}: --dry-run exited {code}: {text[-800:]}"


# -- links -------------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]{2,}|`", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@functools.cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            found.update(re.findall(r'<a (?:id|name)="([^"]+)"', line))
            continue
        base = slug(line.lstrip("#"))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def links() -> list[tuple[str, Path, str]]:
    found = []
    sources = [*DOCS, *sorted((REPO / "tools").glob("*.py"))]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        pattern = r"\]\(([^)\s]+)\)" if path.suffix == ".md" else r"((?:docs/)?[\w.-]+\.md#[\w-]+)"
        for match in re.finditer(pattern, text):
            target = match.group(1)
            if re.match(r"[a-z]+:", target):
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(REPO)}:{line}", path, target))
    return found


@pytest.mark.parametrize(("where", "path", "target"), links(), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_every_relative_link_and_anchor_exists(where, path, target):
    file, _, anchor = target.partition("#")
    if path.suffix == ".md":
        resolved = (path.parent / file).resolve() if file else path
    else:  # a docs reference in a tool's text, relative to docs/
        resolved = REPO / "docs" / Path(file).name
    assert resolved.exists(), f"{where}: {target} does not exist"
    if anchor and resolved.suffix == ".md":
        assert anchor in anchors(resolved), f"{where}: no heading for #{anchor} in {resolved.relative_to(REPO)}"


def test_slugs_follow_github():
    assert slug("## `learned_mixin`: Learned-Mixin +H (Clark et al., EMNLP 2019)".lstrip("#")) == (
        "learned_mixin-learned-mixin-h-clark-et-al-emnlp-2019"
    )
    assert slug(" The bias assignment: reference against random") == "the-bias-assignment-reference-against-random"
