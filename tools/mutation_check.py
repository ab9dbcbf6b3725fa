"""Mutation check (docs/mutation.md): does each core module's test suite fail when its code is wrong?

Mutants come from mutmut's operators (`mutmut.mutation.file_mutation.create_mutations`: swapped
comparison and arithmetic operators, changed numbers and strings, negated conditions, removed
arguments and statements), read from the modules named by `[tool.mutmut] source_paths` in
pyproject.toml. mutmut's own runner is not used: it skips decorated functions (`@torch.no_grad()`
update rules) and module constants (Colored MNIST's palette), and its forked workers do not suit
torch. Instead each mutant is written into a scratch copy of the repository and the module's
covering tests run there in a fresh `python -m pytest -x`; a mutant is killed when they fail or
time out. Too slow for CI (seconds per mutant): run on demand, one module at a time:

    nice -n 15 python -m debiasbench.tools.mutation_check methods/group_dro.py --sample 40
    python -m debiasbench.tools.mutation_check --list            # the configured modules and their tests

It prints a score per module and every survivor; survivors listed in ACCEPTED (with why each is
equivalent or accepted) are reported but left out of the score.
"""

from __future__ import annotations

import argparse
import difflib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
CORE_MODULES = (
    "methods/group_dro.py",
    "datasets/cmnist.py",
    "methods/lff.py",
    "benchmark/integrity.py",
    "benchmark/report/cells.py",
)
# Covering tests where the mirror convention (tests/<package>/test_<module>.py, or any test that
# names the module) misses them: modules exercised through a caller.
COVERING_TESTS = {
    "benchmark/integrity.py": ["tests/benchmark/test_integrity.py"],
    # test_report_tables.py covers cells.py too, through the full report (a minute per run): pass
    # it with --tests for a complete check.
    "benchmark/report/cells.py": ["tests/benchmark/test_report_cells.py", "tests/benchmark/test_report_cli.py"],
    "datasets/cmnist.py": ["tests/datasets/test_generator_golden.py", "tests/datasets/test_cmnist.py"],
    "methods/lff.py": ["tests/methods/test_lff.py"],
    "methods/group_dro.py": ["tests/methods/test_group_dro.py"],
}
# Survivors that are equivalent (no observable behaviour changes) or accepted, keyed by module and
# the mutant's changed line as `original -> mutated` (stripped). docs/mutation.md lists them too.
ACCEPTED: dict[str, dict[str, str]] = {
    "methods/group_dro.py": {
        "sums = torch.zeros(num_groups, dtype=per_sample.dtype, device=per_sample.device) -> "
        "sums = torch.zeros(num_groups, device=per_sample.device)": "equivalent: the losses are float32, "
        "torch.zeros' default dtype",
        "sums = torch.zeros(num_groups, dtype=per_sample.dtype, device=per_sample.device) -> "
        "sums = torch.zeros(num_groups, dtype=per_sample.dtype, )": "equivalent on the CPU; on a GPU "
        "index_add would fail at once (tools.gpu_check runs group_dro on the GPU)",
        "if c > 0: -> if c >= 0:": "equivalent: with C = 0 the adjustment adds 0",
        'self.register_buffer("populated", populated, persistent=False) -> '
        'self.register_buffer("populated", populated, persistent=None)': "equivalent: torch tests "
        "`not persistent`, and None is as false as False",
    },
    "datasets/cmnist.py": {
        "protocol = TrainProtocol(lr=1e-3, weight_decay=0.0, batch_size=256, epochs=100) -> "
        "protocol = TrainProtocol(lr=1e-3, weight_decay=0.0, batch_size=256, )": "equivalent: 100 is "
        "TrainProtocol's default epochs",
    },
    "benchmark/report/cells.py": {
        'for dataset, setting in zip(frame.get("dataset", []), frame.get("_setting", [])): -> '
        'for dataset, setting in zip(frame.get("dataset", []), frame.get("_setting", None)):': "equivalent: "
        "_build assigns the _setting column just before, so the default is never read",
        'n = min(biased.get("n", 0), unbiased.get("n", 0)) -> n = min(biased.get("n", 0), unbiased.get("n", ))': (
            "equivalent: Table 1 always computes both training cells, each with its n, before the drop"
        ),
        '"std": math.nan, -> "STD": math.nan,': "equivalent: the tidy frame fills an absent std with NaN "
        "and keeps only its own columns",
    },
    "benchmark/integrity.py": {
        '_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)} -> '
        '_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", )}': "equivalent where errno has EDQUOT "
        "(Linux, macOS): the fallback is only read on systems without disk quotas",
    },
}


@dataclass(frozen=True)
class Mutant:
    module: str
    number: int
    line: int
    original: str
    mutated: str
    source: str

    @property
    def signature(self) -> str:
        return f"{self.original} -> {self.mutated}"


def configured_paths() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["source_paths"])


def configured_modules() -> list[str]:
    """Every Python module under the configured source paths (package __init__ files aside)."""
    modules: list[str] = []
    for entry in configured_paths():
        path = REPO / entry
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        modules += [str(f.relative_to(REPO)) for f in files if f.name != "__init__.py"]
    return modules


def covering_tests(module: str, extra: list[str] | None = None) -> list[str]:
    """The explicit list, else every test file that imports the module by its dotted name; plus `extra`."""
    if extra:
        return [*covering_tests(module), *extra]
    if module in COVERING_TESTS:
        return [t for t in COVERING_TESTS[module] if (REPO / t).exists()]
    dotted = module.removesuffix(".py").replace("/", ".")
    package, _, stem = dotted.rpartition(".")
    needles = (dotted, f"from debiasbench.{package} import {stem}")  # "debiasbench.methods.lff" holds dotted
    return sorted(
        str(t.relative_to(REPO))
        for t in (REPO / "tests").rglob("test_*.py")
        if any(n in t.read_text(encoding="utf-8") for n in needles)
    )


def _mutation_visitor():
    """mutmut's visitor, told to mutate decorated functions too (we rewrite source, no trampolines)."""
    import libcst as cst
    from mutmut.mutation.file_mutation import MutationVisitor

    class Visitor(MutationVisitor):
        def _skip_node_and_children(self, node: cst.CSTNode) -> bool:
            if isinstance(node, cst.FunctionDef) and node.decorators:
                return False
            return super()._skip_node_and_children(node)

    return Visitor


def mutants(module: str) -> list[Mutant]:
    import libcst as cst
    from libcst.metadata import MetadataWrapper
    from mutmut.mutation.mutators import mutation_operators
    from mutmut.mutation.pragma_handling import get_ignored_lines

    code = (REPO / module).read_text(encoding="utf-8")
    wrapper = MetadataWrapper(cst.parse_module(code))
    operators = [*mutation_operators, (cst.SimpleStatementLine, _remove_call_statement)]
    visitor = _mutation_visitor()(operators, get_ignored_lines(module, code, wrapper, None))
    wrapper.visit(visitor)
    tree = wrapper.module
    skipped = {id(node) for container in _docstrings_and_messages(tree) for node in _walk(container)}
    original_lines = code.splitlines()
    found: list[Mutant] = []
    for mutation in visitor.mutations:
        if id(mutation.original_node) in skipped:
            continue
        source = tree.deep_replace(mutation.original_node, mutation.mutated_node).code
        changed = _first_change(original_lines, source.splitlines())
        if changed is None:
            continue
        line, before, after = changed
        found.append(Mutant(module, len(found), line, before, after, source))
    return found


def _remove_call_statement(node) -> Iterator:
    """A statement that is a bare call (`self.step_all()`, `table.sort()`) replaced by `pass`:
    the "removed statement" mutant, which mutmut's operators do not make."""
    import libcst as cst

    if len(node.body) == 1 and isinstance(node.body[0], cst.Expr) and isinstance(node.body[0].value, cst.Call):
        yield node.with_changes(body=[cst.Pass()])


def _docstrings_and_messages(tree) -> list:
    """Docstrings and the text of raised errors and warnings: mutating them changes no behaviour."""
    import libcst as cst
    import libcst.matchers as m

    nodes: list = []
    for found in m.findall(tree, m.SimpleStatementLine(body=[m.Expr(value=m.SimpleString() | m.ConcatenatedString())])):
        nodes.append(found)
    nodes += list(m.findall(tree, m.Raise()))
    nodes += [c for c in m.findall(tree, m.Call(func=m.Attribute(attr=m.Name("warn")))) if isinstance(c, cst.Call)]
    return nodes


def _walk(node) -> Iterator:
    yield node
    for child in node.children:
        yield from _walk(child)


def _first_change(before: list[str], after: list[str]) -> tuple[int, str, str] | None:
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if tag != "equal":
            old = " ".join(s.strip() for s in before[i1:i2]) or "(nothing)"
            new = " ".join(s.strip() for s in after[j1:j2]) or "(removed)"
            return i1 + 1, old, new
    return None


@contextmanager
def _scratch_copy() -> Iterator[Path]:
    """A copy of the tracked files (and untracked, unignored ones) in a temporary directory."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        root = Path(scratch)
        for name in listed:
            if name.startswith("results/") or not (REPO / name).is_file():
                continue
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
        yield root


def run_tests(root: Path, tests: list[str], timeout: float) -> tuple[bool, float]:
    """(passed, seconds) of `python -m pytest -x` on the tests inside the scratch copy."""
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests]
    start = time.monotonic()
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - start
    return done.returncode == 0, time.monotonic() - start


def survivors_in(report: Path, module: str) -> set[str]:
    """The signatures a previous run of this tool printed as SURVIVED for `module`."""
    found, current = set(), None
    for line in report.read_text(encoding="utf-8").splitlines():
        if not line.startswith(" "):
            current = line.split(":", 1)[0]
        elif current == module and line.strip().startswith("SURVIVED: line "):
            found.add(line.strip().split(": ", 2)[2])
    return found


def select(found: list[Mutant], sample: int | None, match: list[str], seed: int) -> list[Mutant]:
    """Every mutant whose changed line contains one of `match`, plus a seeded sample of the rest."""
    chosen = [m for m in found if any(text in m.original for text in match)]
    rest = [m for m in found if m not in chosen]
    if sample is None or sample >= len(rest):
        return chosen + rest
    return sorted(chosen + random.Random(seed).sample(rest, sample), key=lambda m: m.number)


def check_module(module: str, args: argparse.Namespace) -> tuple[int, int, int]:
    """Run the module's mutants; print survivors; return (killed, scored, accepted survivors)."""
    tests = covering_tests(module, args.tests)
    if not tests:
        print(f"{module}: no covering tests found; add them to COVERING_TESTS")
        return 0, 0, 0
    found = mutants(module)
    if args.rerun:  # only the survivors of an earlier run, e.g. after adding tests
        wanted = survivors_in(args.rerun, module)
        chosen = [m for m in found if m.signature in wanted]
    else:
        chosen = select(found, args.sample, args.match, args.seed)
    print(f"{module}: {len(chosen)} of {len(found)} mutants against {' '.join(tests)}", flush=True)
    killed = accepted_survivors = 0
    survivors: list[tuple[Mutant, str | None]] = []
    with _scratch_copy() as root:
        passed, baseline = run_tests(root, tests, timeout=args.timeout or 1800)
        if not passed:
            raise SystemExit(f"{module}: the covering tests fail without any mutant; fix them first")
        timeout = args.timeout or 3 * baseline + 30
        target = root / module
        for mutant in chosen:
            target.write_text(mutant.source, encoding="utf-8")
            survived, seconds = run_tests(root, tests, timeout)
            target.write_text((REPO / module).read_text(encoding="utf-8"), encoding="utf-8")
            if survived:
                reason = ACCEPTED.get(module, {}).get(mutant.signature)
                accepted_survivors += reason is not None
                survivors.append((mutant, reason))
            else:
                killed += 1
            if args.verbose:
                print(
                    f"  #{mutant.number} line {mutant.line}: {'survived' if survived else 'killed'} ({seconds:.0f} s)"
                )
    scored = len(chosen) - accepted_survivors
    score = 100.0 * killed / scored if scored else 100.0
    print(f"{module}: killed {killed} of {scored} scored mutants ({score:.1f}%), {accepted_survivors} accepted")
    for mutant, reason in survivors:
        tag = f"accepted: {reason}" if reason else "SURVIVED"
        print(f"  {tag}: line {mutant.line}: {mutant.signature}")
    return killed, scored, accepted_survivors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="module paths (default: the five core modules)")
    parser.add_argument("--all", action="store_true", help="every module under [tool.mutmut] source_paths")
    parser.add_argument("--list", action="store_true", help="print the modules, their tests and mutant counts")
    parser.add_argument("--sample", type=int, help="run a seeded sample of N mutants per module (plus --match)")
    parser.add_argument("--match", action="append", default=[], help="always run mutants of lines containing TEXT")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--tests", action="append", default=[], help="another covering test file (repeatable)")
    parser.add_argument("--rerun", type=Path, help="run only the survivors printed in this earlier output")
    parser.add_argument("--timeout", type=float, help="seconds per test run (default: 3 x baseline + 30)")
    parser.add_argument("--min-score", type=float, default=90.0, help="exit 1 when a module scores below it")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every mutant's outcome")
    args = parser.parse_args(argv)
    # A plain `kill` ends the run cleanly: the scratch copy is removed.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    os.chdir(REPO)  # mutmut reads its configuration from ./pyproject.toml
    modules = configured_modules() if args.all else (args.modules or list(CORE_MODULES))
    if args.list:
        for module in modules:
            print(f"{module}: {len(mutants(module))} mutants; tests: {' '.join(covering_tests(module)) or 'none'}")
        return 0
    failing = []
    for module in modules:
        killed, scored, _ = check_module(module, args)
        if scored and 100.0 * killed / scored < args.min_score:
            failing.append(module)
    if failing:
        print(f"below {args.min_score:.0f}%: {', '.join(failing)}")
    return 1 if failing else 0


if __name__ == "__main__":
    raise SystemExit(main())
