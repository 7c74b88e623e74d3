"""What the notebooks train: `course_config`, the report's settings or quick ones.

Quick settings when PETSEG_QUICK=1 (`config.quick_config`), the report's otherwise; checkpoints
and outputs go to the repository's checkpoints/ and outputs/ folders, whichever folder a
notebook runs from. A notebook that resumes a run its learner trained before, with other
settings or on other data, starts it afresh instead of stopping with an error.
"""

from __future__ import annotations

from ..paths import default_checkpoint_dir, default_output_dir
from .checkpoint import stale_run_problem
from .config import TrainConfig, quick_config, quick_mode


def course_config(model: str = "unet", augment: bool = False, **overrides) -> TrainConfig:
    """The notebooks' configuration: the report's settings, or quick ones when PETSEG_QUICK=1.

    With resume=True a run saved with other settings or data (e.g. by an earlier version of
    the course) is not resumed: a line says why, and the run starts afresh.
    """
    settings = dict(checkpoint_dir=str(default_checkpoint_dir()),
                    output_dir=str(default_output_dir()))
    settings.update(overrides)
    make = quick_config if quick_mode() else TrainConfig
    config = make(model=model, augment=augment, **settings)
    if config.resume and (problem := stale_run_problem(config)):
        print(f"{config.run_name}_last.pth is not resumed ({problem}): this run starts afresh.")
        config.resume = False
    return config
