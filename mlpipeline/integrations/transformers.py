"""``MLPipelineCallback``: a Hugging Face ``TrainerCallback`` that records into the running version.

    from mlpipeline.integrations.transformers import MLPipelineCallback
    trainer = Trainer(model, args, train_dataset=..., callbacks=[MLPipelineCallback()])

What the Trainer logs becomes curves at its global step (``eval_loss`` in split ``eval``, ``test_*`` in
``test``, the rest — ``loss``, ``learning_rate``, ``grad_norm`` — in ``train``), the main training arguments
are added to the run's parameters, and in test mode training stops after one step (``max_steps=1``).
Outside a runner it records nothing.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from transformers import TrainerCallback

from ..script.command import log_metric, log_params
from ..script.plain import test_mode

__all__ = ["MLPipelineCallback"]

# the training arguments recorded as the run's parameters
ARGS_KEPT = ("learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size",
             "gradient_accumulation_steps", "num_train_epochs", "max_steps", "weight_decay", "warmup_steps",
             "warmup_ratio", "lr_scheduler_type", "seed", "optim", "fp16", "bf16", "max_grad_norm")
PREFIXES = (("eval_", "eval"), ("test_", "test"))  # the end-of-training summary keeps its train_ names


class MLPipelineCallback(TrainerCallback):
    """Trainer logs into mlpipeline's ledger; one step in test mode."""

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if test_mode():
            _set(args, "max_steps", 1)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if test_mode() and getattr(args, "max_steps", 0) != 1:
            _set(args, "max_steps", 1)
            state.max_steps = 1
        if state.is_world_process_zero:
            kept: Dict[str, Any] = {key: getattr(args, key) for key in ARGS_KEPT if hasattr(args, key)}
            log_params({key: getattr(value, "value", value) for key, value in kept.items()})

    def on_log(self, args: Any, state: Any, control: Any, logs: Optional[Dict[str, Any]] = None,
               **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        for key, value in (logs or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or key == "epoch":
                continue
            split, name = next(((s, key[len(p):]) for p, s in PREFIXES if key.startswith(p) and len(key) > len(p)),
                               ("train", key))
            log_metric(name, float(value), step=int(state.global_step), split=split)


def _set(args: Any, name: str, value: Any) -> None:
    try:
        setattr(args, name, value)
    except (AttributeError, TypeError):  # a frozen TrainingArguments (some releases): set it underneath
        object.__setattr__(args, name, value)
