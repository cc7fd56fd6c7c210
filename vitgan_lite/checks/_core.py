"""What every exercise checker shares.

A checker takes the learner's function (or ``nn.Module`` class), which has the same signature as the
package's reference, and:

* runs it against the reference on several seeds and shapes;
* checks the properties that define the component;
* on failure raises ``AssertionError`` whose message names the likely mistake and the fix;
* on a stub that still raises ``NotImplementedError`` raises :class:`ExerciseNotImplemented` (an
  ``AssertionError`` too) with a friendly "not implemented yet" message;
* on success prints one short line and returns ``True``.

Write a checker as a plain function decorated with :func:`checker`; inside it, use :func:`expect`,
:func:`expect_close`, :func:`expect_tensor` and :func:`fail` (never a bare ``raise AssertionError``),
so that every failure carries a sentence a learner can act on. Test one property at a time, from the
most basic up (returns a tensor, shape, dtype, values on the simplest input, then the harder cases),
so that the first failing property is the learner's mistake.

Each checker also carries staged hints (``hints=``: a more concrete idea, then the shape of the code,
never the answer) that :func:`hint` hands out one at a time, and the package's reference, which
:func:`reveal` prints once the learner's own version has passed.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


class ExerciseNotImplemented(AssertionError):
    """The learner's code still raises ``NotImplementedError``: not a mistake, just not done yet."""


class ExerciseFailed(AssertionError):
    """The learner's code runs but gives a wrong answer; the message names the likely mistake."""


@dataclass
class Exercise:
    """One exercise as the checkers know it: its number, title, staged hints and reference."""

    number: str
    title: str
    hints: tuple[str, ...] = ()
    reference: str | None = None  # "module:qualname" of the package's version, shown by reveal()
    passed: bool = False  # the learner's version passed its checker in this kernel
    hints_given: int = 0


EXERCISES: dict[str, Exercise] = {}
_LAST: list[str] = []  # the exercise checked most recently (the one hint() talks about by default)


def checker(
    exercise: str, title: str, *, hints: tuple[str, ...] = (), reference: str | None = None
) -> Callable[[F], F]:
    """Turn ``check(obj, ...)`` into a learner-facing checker for ``Exercise <exercise>: <title>``.

    ``hints`` are the staged hints :func:`hint` gives after a failure (first the idea made concrete,
    then the shape of the code, never the answer); ``reference`` ("module:qualname") is the package's
    version, which :func:`reveal` prints once the check has passed.
    """
    EXERCISES[exercise] = Exercise(exercise, title, tuple(hints), reference)

    def decorate(check: F) -> F:
        @functools.wraps(check)
        def wrapper(obj: Any, *args: Any, **kwargs: Any) -> bool:
            where = f"Exercise {exercise} ({title})"
            _LAST[:] = [exercise]
            record = EXERCISES[exercise]
            stuck = f" Stuck? Run `hint({exercise!r})` for a more concrete hint." if record.hints else ""
            target = obj if isinstance(obj, type) or not callable(obj) else _traced(obj, title)
            try:
                check(target, *args, **kwargs)
            except NotImplementedError as e:
                raise ExerciseNotImplemented(
                    f"{where} is not implemented yet: replace the `raise NotImplementedError(...)` line "
                    f"with your code, then run this cell again. Goal: {_hint(e)}."
                    + (f" For a hint, run `hint({exercise!r})`." if record.hints else "")
                ) from None
            except ExerciseNotImplemented:
                raise
            except ExerciseFailed as e:
                raise ExerciseFailed(f"{where}: {e}{stuck}") from None
            except AssertionError as e:
                raise ExerciseFailed(f"{where}: {e}{stuck}") from e
            except Exception as e:  # the learner's code crashed: a hint, and its traceback for debugging
                raise ExerciseFailed(f"{where}: {crash_message(e)}{stuck}") from e
            record.passed = True
            print(f"\u2705 {where}: all checks passed.")
            return True

        wrapper.exercise = exercise  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _exercise(number: str | None) -> Exercise:
    number = number if number is not None else (_LAST[0] if _LAST else None)
    if number is None:
        raise ValueError("Run a checker first, or name the exercise: hint('1.1').")
    number = str(number)
    if number not in EXERCISES:
        raise ValueError(f"There is no exercise {number!r}; the exercises are {', '.join(EXERCISES)}.")
    return EXERCISES[number]


def hint(exercise: str | None = None, level: int | None = None) -> str:
    """The next staged hint for ``exercise`` (default: the exercise checked last), printed and returned.

    Each call goes one level deeper: first the idea made concrete, then the shape of the code (never
    the answer). ``level`` (1, 2, ...) asks for one level directly.
    """
    record = _exercise(exercise)
    if not record.hints:
        text = f"Exercise {record.number} has no staged hints: the checker's message is the hint."
    else:
        n = level if level is not None else min(record.hints_given + 1, len(record.hints))
        if not 1 <= n <= len(record.hints):
            raise ValueError(f"Exercise {record.number} has hints 1 to {len(record.hints)}, not {n}.")
        record.hints_given = max(record.hints_given, n)
        more = (
            f" (run hint({record.number!r}) again for hint {n + 1} of {len(record.hints)})"
            if n < len(record.hints)
            else " (the last hint; after that, compare with the lesson notebook)"
        )
        text = f"Hint {n} for exercise {record.number} ({record.title}){more}:\n{record.hints[n - 1]}"
    print(text)
    return text


def reference_source(exercise: str) -> str:
    """The source code of the package's version of ``exercise``."""
    record = _exercise(exercise)
    if record.reference is None:
        raise ValueError(f"Exercise {record.number} has no package version to show.")
    module, _, qualname = record.reference.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return inspect.getsource(obj)


def reveal(exercise: str | None = None, force: bool = False) -> str | None:
    """Print the package's version of ``exercise``, once your own has passed its checker (or ``force``)."""
    record = _exercise(exercise)
    if not (record.passed or force):
        print(
            f"Exercise {record.number} has not passed its checker in this session yet: make it pass first "
            f"(`hint({record.number!r})` helps), then compare. `reveal({record.number!r}, force=True)` "
            "shows it anyway."
        )
        return None
    if record.reference is None:
        print(f"Exercise {record.number}'s reference is the code cell of its lesson notebook.")
        return None
    source = reference_source(record.number)
    print(f"The course's version ({record.reference.replace(':', '.')}):\n\n{source}")  # type: ignore[union-attr]
    return source


# What a learner's crash usually means, matched on "ExceptionType: message" (first match wins).
CRASH_HINTS: list[tuple[str, str]] = [
    (
        r"view size is not compatible with input tensor's size and stride",
        "`.view` after `permute`/`transpose`: the tensor is no longer contiguous; use `.reshape(...)`",
    ),
    (
        r"shape '\[.*\]' is invalid for input of size",
        "a reshape or view whose sizes do not multiply to the number of elements: read each size "
        "(B, N, C, P) from the input's shape instead of hard-coding it (3 channels, 32 pixels, ...)",
    ),
    (
        r"mat1 and mat2 shapes cannot be multiplied|shapes cannot be multiplied|size mismatch",
        "a matrix product whose inner sizes differ: check which axis holds the features "
        "(transpose one side?)",
    ),
    (
        r"Expected size for first two dimensions of batch2 tensor",
        "a batched matrix product (`@`, `bmm`) whose inner sizes differ: the last axis of the left factor "
        "must match the second-to-last axis of the right one (transpose one side, e.g. "
        "`k.transpose(-2, -1)`?)",
    ),
    (
        r"The size of tensor a \(\d+\) must match the size of tensor b \(\d+\)",
        "two tensors that do not broadcast: a size is hard-coded, or an axis needs `unsqueeze` to line up",
    ),
    (
        r"Dimension out of range|too many indices",
        "an axis that does not exist: count the input's dimensions (for (B, N, D): 0, 1, 2, "
        "or -1 for the last)",
    ),
    (
        r"does not require grad and does not have a grad_fn",
        "a backward pass through a tensor with no graph: it was made under `torch.no_grad()` "
        "or `.detach()`ed",
    ),
    (
        r"leaf Variable that requires grad is being used in an in-place operation",
        "an in-place change of a parameter (or a tensor that requires grad) outside `torch.no_grad()`",
    ),
    (
        r"'NoneType' object",
        "something is None where a tensor was expected: a function without `return`, or a `.grad` read "
        "before any backward pass reached that tensor",
    ),
    (
        r"missing \d+ required positional argument|positional arguments? but|unexpected keyword argument",
        "a call whose arguments differ from the signature the exercise asks for: keep the stub's "
        "argument names and order",
    ),
    (
        r"Expected all tensors to be on the same device",
        "tensors on different devices: create new tensors on the input's device "
        "(`x.new_zeros`, `torch.zeros_like`)",
    ),
    (
        r"expected (scalar type|m1 and m2 to have the same dtype)|must have the same dtype",
        "mixed dtypes: create new tensors with the input's dtype (`x.new_zeros`, `torch.zeros_like`)",
    ),
]
_STAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("checker_stage", default=None)


@contextlib.contextmanager
def stage(description: str) -> Iterator[None]:
    """Name what the checker is doing (``with stage("patchify on a (2, 3, 8, 8) batch"):``), so that a crash
    of the learner's code says which check was running and on what input."""
    token = _STAGE.set(description)
    try:
        yield
    except Exception as e:  # the stages travel with the exception (innermost first) to the checker's wrapper
        if not hasattr(e, "_checker_stages"):
            e._checker_stages = []  # type: ignore[attr-defined]
        e._checker_stages.append(description)  # type: ignore[attr-defined]
        raise
    finally:
        _STAGE.reset(token)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, torch.nn.Module):
        return type(value).__name__
    if isinstance(value, (int, float, str, bool)) or value is None:
        return repr(value)
    return type(value).__name__


def _traced(fn: Callable[..., Any], title: str) -> Callable[..., Any]:
    """``fn`` that names each of its calls (the arguments' shapes) as the current :func:`stage`."""
    name = getattr(fn, "__name__", "")
    name = name if name.isidentifier() else title

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        shown = [_describe(a) for a in args] + [f"{k}={_describe(v)}" for k, v in kwargs.items()]
        with stage(f"the call {name}({', '.join(shown)})"):
            return fn(*args, **kwargs)

    return traced


def crash_message(e: BaseException) -> str:
    """The sentence for a learner's crash: what was raised, during which check, and the likely cause."""
    raised = f"{type(e).__name__}: {e}".strip()
    text = f"your code raised {raised[:300]}"
    stages = getattr(e, "_checker_stages", None) or ([_STAGE.get()] if _STAGE.get() else [])
    calls = [s for s in stages if s.startswith("the call ")]
    checks = [s for s in stages if not s.startswith("the call ")]
    if checks:
        text += f" while checking {checks[-1]}"
    if calls:
        text += f", in {calls[0]}" if checks else f" in {calls[0]}"
    cause = next((hint for pattern, hint in CRASH_HINTS if re.search(pattern, raised)), None)
    if cause:
        text += f". Likely cause: {cause}"
    return text + ". Read the traceback above to see which line; check the shapes in the docstring."


def _hint(e: NotImplementedError) -> str:
    msg = str(e)
    return (
        msg.split(":", 1)[1].strip()
        if msg.startswith("Exercise") and ":" in msg
        else (msg or "see the markdown above")
    )


def expect(condition: bool, message: str) -> None:
    """Fail with ``message`` (the likely mistake and its fix) unless ``condition`` holds."""
    if not condition:
        raise ExerciseFailed(message)


def fail(message: str) -> NoReturn:
    """Fail with ``message`` (the likely mistake and its fix): for a mistake found by a branch, not a test."""
    raise ExerciseFailed(message)


def expect_tensor(out: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """``out`` must be a tensor of ``shape`` with finite values."""
    expect(isinstance(out, torch.Tensor), f"{what} should return a torch.Tensor, got {type(out).__name__}")
    expect(
        tuple(out.shape) == tuple(shape),
        f"{what} should have shape {tuple(shape)}, got {tuple(out.shape)}",
    )
    expect(bool(torch.isfinite(out).all()), f"{what} contains NaN or inf values")
    return out


def expect_close(
    actual: torch.Tensor, expected: torch.Tensor, message: str, atol: float = 1e-5, rtol: float = 1e-4
) -> None:
    """``actual`` must match the reference; the failure says how far off it is and what that suggests."""
    expect(
        isinstance(actual, torch.Tensor) and actual.shape == expected.shape,
        f"{message} (shape {tuple(getattr(actual, 'shape', ()))} instead of {tuple(expected.shape)})",
    )
    if not torch.allclose(actual.float(), expected.float(), atol=atol, rtol=rtol):
        err = (actual.float() - expected.float()).abs().max().item()
        raise ExerciseFailed(f"{message} (largest difference from the reference: {err:.3g})")


def seeded(seed: int) -> torch.Generator:
    """A CPU generator for reproducible test inputs that leaves the global RNG alone."""
    return torch.Generator().manual_seed(seed)


def build_seeded(
    cls: Callable[..., torch.nn.Module], seed: int, *args: Any, **kwargs: Any
) -> torch.nn.Module:
    """``cls(*args, **kwargs)`` built under ``torch.manual_seed(seed)``, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(*args, **kwargs)


def expect_grads_reach_every_parameter(
    module: torch.nn.Module, message: Callable[[str], str], skip: tuple[str, ...] = ()
) -> None:
    """After a backward pass: every parameter of ``module`` has a gradient that is not all zero.

    ``message(name)`` says what to fix when parameter ``name`` got none; ``skip`` names the parameters
    whose true gradient is zero (e.g. a bias that cancels in a difference), which are not looked at.
    """
    for name, p in module.named_parameters():
        if name not in skip:
            expect(p.grad is not None and bool(p.grad.abs().sum() > 0), message(name))


__all__ = [
    "EXERCISES",
    "Exercise",
    "ExerciseFailed",
    "ExerciseNotImplemented",
    "build_seeded",
    "checker",
    "expect",
    "expect_close",
    "expect_grads_reach_every_parameter",
    "expect_tensor",
    "crash_message",
    "fail",
    "hint",
    "reference_source",
    "reveal",
    "seeded",
    "stage",
]
