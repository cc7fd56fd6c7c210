"""Exercise checkers: ``from vitgan_lite.checks import check_patchify``; ``check_patchify(my_patchify)``.

One public ``check_*`` per exercise, grouped by lesson in the submodules. Each prints one line when
your code is right, and otherwise raises an ``AssertionError`` that names the likely mistake and the
fix (``ExerciseNotImplemented`` while the exercise still raises ``NotImplementedError``).
``hint("1.1")`` gives staged hints (one level deeper per call, never the answer); ``reveal("1.1")``
prints the course's version once yours has passed.
"""

from vitgan_lite.checks._core import ExerciseFailed, ExerciseNotImplemented, hint, reveal
from vitgan_lite.checks.attention import *  # noqa: F403  lesson 03
from vitgan_lite.checks.data import *  # noqa: F403  lesson 00
from vitgan_lite.checks.diagnostics import *  # noqa: F403  lesson 11
from vitgan_lite.checks.discriminator import *  # noqa: F403  lesson 05
from vitgan_lite.checks.generator import *  # noqa: F403  lesson 08
from vitgan_lite.checks.inr import *  # noqa: F403  lesson 07
from vitgan_lite.checks.losses import *  # noqa: F403  lesson 09
from vitgan_lite.checks.modulation import *  # noqa: F403  lesson 06
from vitgan_lite.checks.patches import *  # noqa: F403  lesson 01
from vitgan_lite.checks.positional import *  # noqa: F403  lesson 02
from vitgan_lite.checks.spectral import *  # noqa: F403  lesson 04
from vitgan_lite.checks.train import *  # noqa: F403  lesson 10

__all__ = ["ExerciseFailed", "ExerciseNotImplemented", "hint", "reveal"] + [
    n for n in dir() if n.startswith("check_")
]
