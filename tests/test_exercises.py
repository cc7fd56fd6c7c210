"""The exercise pipeline: stubs are generated from the solutions, are up to date, and run without crashing."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tools import make_exercises as mk

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))


def test_markers_become_stubs_with_the_hint():
    src = (
        "def f(x):\n"
        '    # BEGIN SOLUTION 3.2: use the "expanded" form\n'
        "    y = x + 1\n"
        "    return y\n"
        "    # END SOLUTION\n"
        "z = 1"
    )
    out = mk.strip_solutions(src, "t")
    assert (
        out == 'def f(x):\n    raise NotImplementedError("Exercise 3.2: use the \\"expanded\\" form")\nz = 1'
    )
    ns = {}
    exec(out, ns)
    with pytest.raises(NotImplementedError, match=r'Exercise 3.2: use the "expanded" form'):
        ns["f"](1)


@pytest.mark.parametrize(
    "src,match",
    [
        ("# BEGIN SOLUTION 1.1: a\nx = 1\n", "without END"),
        ("x = 1\n# END SOLUTION\n", "without BEGIN"),
        ("# BEGIN SOLUTION 1.1: a\n# BEGIN SOLUTION 1.2: b\n# END SOLUTION\n", "inside another"),
        ("# BEGIN SOLUTION: no number\nx = 1\n# END SOLUTION\n", "malformed marker"),
    ],
)
def test_malformed_markers_are_refused(src, match):
    with pytest.raises(mk.MarkerError, match=match):
        mk.strip_solutions(src, "t")


def test_exercises_are_up_to_date(capsys):
    assert mk.main(["--check"]) == 0, capsys.readouterr().out


def test_every_solution_has_an_exercise_and_no_solution_leaks():
    solutions = sorted(p.name for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    assert solutions and solutions == [p.name for p in EXERCISES]
    for path in EXERCISES:
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, path.name
        assert 'raise NotImplementedError("Exercise' in text, path.name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
        assert f"exercises/{path.name}" in nb.cells[0].source, (
            f"{path.name}: Colab badge should open the exercise"
        )


def test_each_exercise_is_followed_by_its_hints_and_the_reveal_of_the_course_version():
    import vitgan_lite.checks as checks

    numbers = []
    for path in EXERCISES:
        nb = nbformat.read(path, as_version=4)
        assert "**How to work.**" in nb.cells[0].source, path.name
        for i, cell in enumerate(nb.cells):
            for number in mk.exercises_checked(cell.source) if cell.cell_type == "code" else []:
                later = [c.source for c in nb.cells[i + 1 :] if c.cell_type == "code"]
                reveals = [j for j, src in enumerate(later) if f'reveal("{number}")' in src]
                checks_again = [j for j, src in enumerate(later) if number in mk.exercises_checked(src)]
                assert reveals, f"{path.name}: no reveal cell for exercise {number}"
                assert not checks_again or reveals[0] > checks_again[-1], f"{path.name}: reveal before check"
                numbers.append(number)
    assert sorted(set(numbers)) == sorted(
        getattr(checks, n).exercise for n in checks.__all__ if n.startswith("check_")
    )


@pytest.mark.parametrize("path", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_exercise_runs_top_to_bottom_with_stubs(path):
    """A learner's 'Run all' on the untouched exercise: no crash, every check says 'not implemented yet'."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    checks = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if "raises-exception" in cell.metadata.get("tags", []):
            checks += 1
            assert errors and errors[0].ename == "ExerciseNotImplemented", f"cell {i}: {cell.source[:80]}"
            assert "is not implemented yet" in errors[0].evalue
        else:
            assert not errors, f"cell {i} of {path.name} failed: {errors[0].ename}: {errors[0].evalue}"
    assert checks > 0, f"{path.name} has no check cell"
