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
so that every failure carries a sentence a learner can act on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


class ExerciseNotImplemented(AssertionError):
    """The learner's code still raises ``NotImplementedError``: not a mistake, just not done yet."""


class ExerciseFailed(AssertionError):
    """The learner's code runs but gives a wrong answer; the message names the likely mistake."""


def checker(exercise: str, title: str) -> Callable[[F], F]:
    """Turn ``check(obj, ...)`` into a learner-facing checker for ``Exercise <exercise>: <title>``."""

    def decorate(check: F) -> F:
        @functools.wraps(check)
        def wrapper(obj: Any, *args: Any, **kwargs: Any) -> bool:
            where = f"Exercise {exercise} ({title})"
            try:
                check(obj, *args, **kwargs)
            except NotImplementedError as e:
                raise ExerciseNotImplemented(
                    f"{where} is not implemented yet: replace the `raise NotImplementedError(...)` line "
                    f"with your code, then run this cell again. Hint: {_hint(e)}"
                ) from None
            except ExerciseNotImplemented:
                raise
            except ExerciseFailed as e:
                raise ExerciseFailed(f"{where}: {e}") from None
            except AssertionError as e:
                raise ExerciseFailed(f"{where}: {e}") from e
            except Exception as e:  # the learner's code crashed: keep its traceback for debugging
                raise ExerciseFailed(
                    f"{where}: your code raised {type(e).__name__}: {e}. Read the traceback above "
                    "to see which line; check the shapes in the docstring."
                ) from e
            print(f"\u2705 {where}: all checks passed.")
            return True

        wrapper.exercise = exercise  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


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
    "ExerciseFailed",
    "ExerciseNotImplemented",
    "build_seeded",
    "checker",
    "expect",
    "expect_close",
    "expect_grads_reach_every_parameter",
    "expect_tensor",
    "fail",
    "seeded",
]
