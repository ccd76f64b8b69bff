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
