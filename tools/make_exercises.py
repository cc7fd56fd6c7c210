"""Generate ``exercises/NN_*.ipynb`` from ``solutions/NN_*.ipynb`` (the single source).

In a solution notebook, each exercise region sits inside a code cell between two marker lines::

    def patchify(x, patch_size):
        # BEGIN SOLUTION 1.1: split H and W into (H/P, P) and (W/P, P), permute, flatten
        ...
        # END SOLUTION

The exercise notebook gets, at the marker's indentation::

        raise NotImplementedError("Exercise 1.1: split H and W into (H/P, P) and (W/P, P), permute, flatten")

Outputs and execution counts are cleared, the Colab badge points at the exercise, and every cell
that calls a ``check_*`` checker is tagged ``raises-exception`` so that "Run all" goes on past the
"not implemented yet" messages (JupyterLab and nbclient honour the tag). After the last check of each
exercise comes a cell that offers the staged hints (``hint("1.1")``) and, once the check has passed,
shows the course's version (``reveal("1.1")``): the learner writes it first, then compares.

Usage::

    python tools/make_exercises.py            # write exercises/
    python tools/make_exercises.py --check    # exit 1 when exercises/ is stale (CI)
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION (?P<id>\d+\.\d+):\s*(?P<hint>.+?)\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
CHECK_CALL = re.compile(r"\bcheck_\w+\(")
CHECK_NAME = re.compile(r"\b(check_\w+)\(")
REVEAL_CELL = """\
# Stuck? hint("{n}") gives a more concrete hint; each call goes one level deeper, never the answer.
# Passed? Compare your version with the course's: reveal("{n}") shows it once your check has passed.
from vitgan_lite.checks import hint, reveal

reveal("{n}")"""


HOW_TO_WORK = """

**How to work.** Write each piece from its description and equation, before you look at the lesson's
code (that cell is the answer). A failing check names the first property that is wrong; `hint("N.M")`
then gives a more concrete hint, and a second call the shape of the code, never the answer. Once a
check passes, the cell under it shows the course's version (`reveal("N.M")`) to compare with yours."""


def exercises_checked(source: str) -> list[str]:
    """The exercise numbers (``"1.1"``) of the checkers that a cell calls, in order."""
    import vitgan_lite.checks as checks

    numbers = []
    for name in CHECK_NAME.findall(source):
        number = getattr(getattr(checks, name, None), "exercise", None)
        if number and number not in numbers:
            numbers.append(number)
    return numbers


class MarkerError(ValueError):
    """A solution notebook's markers are malformed; the message names the notebook and cell."""


def strip_solutions(source: str, where: str) -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region with a stub that raises."""
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        m = BEGIN.match(line)
        if m:
            if inside:
                raise MarkerError(f"{where}: BEGIN SOLUTION inside another solution region")
            inside = True
            hint = m["hint"].replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'{m["indent"]}raise NotImplementedError("Exercise {m["id"]}: {hint}")')
        elif END.match(line):
            if not inside:
                raise MarkerError(f"{where}: END SOLUTION without BEGIN SOLUTION")
            inside = False
        elif "SOLUTION" in line and line.strip().startswith("#") and "BEGIN" in line:
            raise MarkerError(
                f"{where}: malformed marker {line.strip()!r}; write '# BEGIN SOLUTION N.M: hint'"
            )
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return "\n".join(out)


def make_exercise(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The exercise notebook for one solution notebook."""
    nb = copy.deepcopy(solution)
    found = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace(f"solutions/{name}", f"exercises/{name}")
            continue
        if cell.cell_type != "code":
            continue
        found += cell.source.count("# BEGIN SOLUTION")
        cell.source = strip_solutions(cell.source, f"solutions/{name}, cell {i}")
        cell.outputs = []
        cell.execution_count = None
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in ("tags", "collapsed", "jupyter")}
        tags = [t for t in cell.metadata.get("tags", []) if t != "raises-exception"]
        if CHECK_CALL.search(cell.source):
            tags.append("raises-exception")
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    if not found:
        raise MarkerError(f"solutions/{name} has no '# BEGIN SOLUTION N.M: hint' region")
    # after the last cell that checks an exercise, the cell with its hints and the course's version
    last: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for number in exercises_checked(cell.source):
                last[number] = i
    nb.cells[0].source += HOW_TO_WORK
    for number, i in sorted(last.items(), key=lambda item: -item[1]):
        cell = nbformat.v4.new_code_cell(REVEAL_CELL.format(n=number))
        cell.id = f"hint-and-reveal-{number.replace('.', '-')}"  # stable, so that --check can compare
        nb.cells.insert(i + 1, cell)
    nb.metadata.pop("widgets", None)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb, version=4) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if exercises/ is out of date")
    args = parser.parse_args(argv)
    solutions = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    expected = {p.name: render(make_exercise(nbformat.read(p, as_version=4), p.name)) for p in solutions}
    out_dir = ROOT / "exercises"
    stale = [
        n for n, text in expected.items() if not (out_dir / n).exists() or (out_dir / n).read_text() != text
    ]
    extra = sorted(p.name for p in out_dir.glob("*.ipynb") if p.name not in expected)
    if args.check:
        for n in stale:
            print(f"exercises/{n} is out of date with solutions/{n}")
        for n in extra:
            print(f"exercises/{n} has no solutions/{n}")
        if stale or extra:
            print("run: python tools/make_exercises.py")
            return 1
        print(f"exercises/ is up to date ({len(expected)} notebooks)")
        return 0
    out_dir.mkdir(exist_ok=True)
    for n in stale:
        (out_dir / n).write_text(expected[n])
        print(f"wrote exercises/{n}")
    for n in extra:
        print(f"warning: exercises/{n} has no solution notebook", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
