"""The original's mode names: what an input is for, and how the runner runs a version."""


class ModeKeys:
    """What an input is for (the ``mode`` a DataLoader's ``get_train_input`` may receive)."""

    TRAIN = "Train"
    PREDICT = "Predict"
    EVALUATE = "Evaluate"
    EVAL = EVALUATE
    TEST = "Test"


class ExecutionModeKeys:
    """How the runner runs a version: ``TEST`` (one step, temporary dir) or ``TRAIN``."""

    TRAIN = "Train"
    TEST = "Test"


class ExperimentModeKeys:
    """The 2.0a1 … 2.0a7.post1 command a version runs under (``mlpipeline run``/``test``/``export``): what
    a 2.x ``pre_execution_hook(mode)`` and ``post_execution_hook(mode)`` receive."""

    RUN = "Run"
    TEST = "Test"
    EXPORT = "Export"
