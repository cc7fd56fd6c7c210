"""Count the checkers' mutation suite: wrong answers caught and named, crashes turned into hints, and
correct alternatives accepted.

The suite is the ``mistakes_are_named(check, [(wrong, regex), ...])`` and ``alternatives_pass(check,
[alt, ...])`` lists of ``tests/test_checks_*.py``. Each wrong answer ("mutant") is run through its
checker and sorted into one of:

* **named**: refused with the checker's own failure (``ExerciseFailed``) and a message that matches the
  mistake's regex;
* **caught, other message**: refused, but the message does not name this mistake;
* **crashed through**: an exception other than the checker's failure reached the learner;
* **passed**: the checker accepted a wrong answer.

A refusal whose message starts "your code raised" is a learner crash the checker turned into a hint
(counted as well). Correct alternatives must all be accepted.

Usage::

    python tools/checker_mutants.py            # the table, one row per exercise, and the totals
    python tools/checker_mutants.py --failures # also list every mutant that is not "named"
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    exercise: str
    title: str
    mutants: int = 0
    named: int = 0
    other_message: int = 0
    crashed_through: int = 0
    passed: int = 0
    crash_hints: int = 0
    alternatives: int = 0
    accepted: int = 0
    problems: list[str] = field(default_factory=list)


def collect() -> dict[str, tuple[Callable[..., Any], list, list]]:
    """``{exercise: (check, [(wrong, regex), ...], [alternatives])}`` from every tests/test_checks_*.py."""
    for p in (str(ROOT), str(ROOT / "tests")):
        if p not in sys.path:
            sys.path.insert(0, p)
    suite: dict[str, tuple[Callable[..., Any], list, list]] = {}
    for path in sorted((ROOT / "tests").glob("test_checks_*.py")):
        module = importlib.import_module(path.stem)
        for obj in vars(module).values():
            for kind in ("mutants", "alternatives"):
                if hasattr(obj, kind):
                    check, cases = getattr(obj, kind)
                    _, mutants, alternatives = suite.setdefault(check.exercise, (check, [], []))
                    (mutants if kind == "mutants" else alternatives).extend(cases)
    return suite


def _run(check: Callable[..., Any], candidate: Any) -> tuple[str, str]:
    from vitgan_lite.checks import ExerciseFailed

    with contextlib.redirect_stdout(io.StringIO()):
        try:
            check(candidate)
        except ExerciseFailed as e:
            return "failed", str(e)
        except Exception as e:  # noqa: BLE001  a crash that reached the learner
            return "crashed", f"{type(e).__name__}: {e}"
    return "passed", ""


def measure() -> list[Row]:
    """Run the whole suite; one :class:`Row` per exercise, in exercise order."""
    from vitgan_lite.checks._core import EXERCISES

    rows: dict[str, Row] = {}
    for exercise, (check, mutants, alternatives) in collect().items():
        row = rows[exercise] = Row(exercise, EXERCISES[exercise].title)
        for wrong, match in mutants:
            row.mutants += 1
            outcome, message = _run(check, wrong)
            name = getattr(wrong, "__name__", repr(wrong))
            if outcome == "failed":
                if "your code raised" in message:
                    row.crash_hints += 1
                if re.search(match, message, flags=re.I | re.S):
                    row.named += 1
                else:
                    row.other_message += 1
                    row.problems.append(f"{name}: message does not match {match!r}: {message[:200]}")
            elif outcome == "crashed":
                row.crashed_through += 1
                row.problems.append(f"{name}: crashed through: {message[:200]}")
            else:
                row.passed += 1
                row.problems.append(f"{name}: wrong answer passed (expected {match!r})")
        for alternative in alternatives:
            row.alternatives += 1
            outcome, message = _run(check, alternative)
            if outcome == "passed":
                row.accepted += 1
            else:
                name = getattr(alternative, "__name__", repr(alternative))
                row.problems.append(f"{name}: correct alternative refused: {message[:200]}")
    key = lambda r: tuple(int(p) for p in r.exercise.split("."))  # noqa: E731
    return sorted(rows.values(), key=key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failures", action="store_true", help="list every mutant that is not named")
    args = parser.parse_args(argv)
    rows = measure()
    head = f"{'exercise':<8} {'title':<34} {'mutants':>7} {'named':>5} {'other':>5} {'crash':>5} "
    head += f"{'passed':>6} {'hints':>5} {'alts':>4} {'ok':>3}"
    print(head)
    total = Row("all", "")
    for r in rows:
        print(
            f"{r.exercise:<8} {r.title[:34]:<34} {r.mutants:>7} {r.named:>5} {r.other_message:>5} "
            f"{r.crashed_through:>5} {r.passed:>6} {r.crash_hints:>5} {r.alternatives:>4} {r.accepted:>3}"
        )
        for f in ("mutants", "named", "other_message", "crashed_through", "passed", "crash_hints"):
            setattr(total, f, getattr(total, f) + getattr(r, f))
        total.alternatives += r.alternatives
        total.accepted += r.accepted
        total.problems += [f"{r.exercise}: {p}" for p in r.problems]
    print(
        f"\n{len(rows)} exercises, {total.mutants} wrong answers: {total.named} refused and named, "
        f"{total.other_message} refused with another message, {total.crashed_through} crashed through, "
        f"{total.passed} passed; {total.crash_hints} learner crashes turned into hints. "
        f"{total.accepted} of {total.alternatives} correct alternatives accepted."
    )
    if args.failures and total.problems:
        print("\n" + "\n".join(total.problems))
    return 0 if not total.problems else 1


if __name__ == "__main__":
    sys.exit(main())
