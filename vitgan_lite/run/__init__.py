"""The run layer: what it takes to run the course's algorithm for real, kept off the lessons' reading path.

The teaching core (``vitgan_lite.<lesson module>``, ``vitgan_lite.train``) is the model and the
algorithm, one concept per module. This subpackage runs it: it imports the core, the core never imports it.

    trainer      Trainer, Parts (one iteration), build_parts, the random streams, mixed precision
    checkpoints  atomic save, checked load, the architecture check, the shipped and saved generators
    distributed  DDP under torchrun: per-rank rows of the global random draws
    fidelity     FID / IS of a generator through torch-fidelity
    bench        throughput of the trainer's iteration against the straightforward version
    cli          python -m vitgan_lite train | sample | evaluate | bench

The names a notebook needs are imported here: ``from vitgan_lite.run import Trainer, pretrained_generator``.
"""

from vitgan_lite.run.checkpoints import (
    CheckpointError,
    generator_from_checkpoint,
    load_checkpoint,
    pretrained_generator,
)
from vitgan_lite.run.trainer import Trainer, TrainingDiverged

__all__ = [
    "CheckpointError",
    "Trainer",
    "TrainingDiverged",
    "generator_from_checkpoint",
    "load_checkpoint",
    "pretrained_generator",
]
