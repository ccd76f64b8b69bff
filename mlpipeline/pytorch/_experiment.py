"""2.x's ``BaseTorchExperimentABC``: an experiment whose model, optimizer and learning-rate scheduler are
checkpointed to ``model_params0.tch`` in the experiment dir, the older ones kept as ``model_params1.tch`` …
(torch is imported when a checkpoint is saved or loaded)."""
import os
from typing import Any, Optional

from ..base import ExperimentABC
from ..entities import ExecutionModeKeys

__all__ = ["BaseTorchExperimentABC"]


class BaseTorchExperimentABC(ExperimentABC):
    """``setup_model`` names the checkpoint files; ``pre_execution_hook`` loads the latest one when it exists
    (``self.epochs_params``: the epoch it was saved at, else 0); ``save_checkpoint(epoch)`` keeps up to
    ``save_history_checkpoints_count`` older ones. The script sets ``self.model``, ``self.optimizer`` (and
    ``self.lr_scheduler``) in its ``setup_model``, after calling this one."""

    lr_scheduler: Any  # the script's to set (2.x gave it no default)

    def __init__(self, versions: Any, allow_delete_experiment_dir: bool = False, **args: Any):
        super().__init__(versions, allow_delete_experiment_dir, **args)
        self.model: Any = None
        self.topk_k: Any = None
        self.logging_iteration: Any = None
        self.criterion: Any = None
        self.optimizer: Any = None
        self.checkpoint_saving_per_epoch: Any = None
        self.use_cuda: Any = None
        self.save_history_checkpoints_count: Any = None

    def setup_model(self) -> None:  # type: ignore[override]  # 2.x's form
        experiment_dir: Any = self.experiment_dir  # set by the runner before this is called
        self.history_file_name = "{}/model_params{}.tch".format(experiment_dir.rstrip("/"), "{}")
        self.file_name = self.history_file_name.format(0)

    def pre_execution_hook(self, mode: Any = ExecutionModeKeys.TEST) -> None:  # type: ignore[override]
        print("Version spec: ", self.current_version)
        self.current_version = self.current_version
        self.logging_iteration = 10
        self.save_history_checkpoints_count = 10
        if os.path.isfile(self.file_name):
            self.log("Loading parameters from: {}".format(self.file_name))
            self.load_history_checkpoint(self.file_name)
        else:
            self.epochs_params = 0
            self.log("No checkpoint")

    def get_trained_step_count(self) -> Any:
        ret_val = self.epochs_params
        self.log("epochs_trained: {}".format(ret_val))
        return ret_val

    def save_checkpoint(self, epoch: int) -> None:
        """Save the model, optimizer, scheduler and validation data as the checkpoint of ``epoch``, moving the
        older ones one number up."""
        import torch

        directory = os.path.dirname(self.file_name)
        if not os.path.exists(directory):
            os.makedirs(directory)
        if self.save_history_checkpoints_count is not None:
            if self.save_history_checkpoints_count < 1:
                raise ValueError("save_history_checkpoints_count should be 1 or higher. "
                                 "Else set it to None to completely disable this feature.")
            for history_idx in range(self.save_history_checkpoints_count - 1, -1, -1):
                history_file_name = self.history_file_name.format(history_idx)
                if os.path.exists(history_file_name):
                    os.replace(history_file_name, self.history_file_name.format(history_idx + 1))
            self.log("History checkpoints: {}".format(self.save_history_checkpoints_count))
        scheduler = getattr(self, "lr_scheduler", None)  # 2.x raised AttributeError when the script set none
        torch.save({
            "epoch": epoch,
            "state_dict": self.model.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "validation": self.dataloader.datasets.validation_dataset,
            "lr_scheduler": None if scheduler is None else scheduler.state_dict(),
        }, self.file_name)
        self.log("Saved checkpoint for epoch: {} at {}".format(epoch + 1, self.file_name))

    def load_history_checkpoint(self, checkpoint_file_name: str, load_optimizer: bool = True,
                                export_mode: bool = False) -> None:
        """Load a checkpoint ``save_checkpoint`` wrote: the model's parameters (and, unless ``export_mode``,
        the optimizer's and scheduler's when ``load_optimizer``); ``self.epochs_params`` is its epoch."""
        import torch

        self.log("Loading: {}".format(checkpoint_file_name), log_to_file=True)
        # weights_only=False: the file is the one save_checkpoint wrote (its validation data may be any
        # object), read as the torch of 2.x's time read it
        checkpoint = torch.load(checkpoint_file_name, weights_only=False)
        self.epochs_params = checkpoint["epoch"]
        self.model.load_state_dict(checkpoint["state_dict"])
        if export_mode:
            return
        if load_optimizer:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            if checkpoint["lr_scheduler"] is not None:
                self.lr_scheduler.load_state_dict(checkpoint["lr_scheduler"])

    def get_ancient_checkpoint_file_name(self, epoch_from_last: Optional[int] = None) -> Optional[str]:
        """The oldest checkpoint file that exists among the ``epoch_from_last`` before the latest (0: the
        latest), or None."""
        if epoch_from_last is None:
            epoch_from_last = self.save_history_checkpoints_count
        elif epoch_from_last == 0:
            history_file_name = self.history_file_name.format(0)
            if os.path.exists(history_file_name):
                return history_file_name
        elif epoch_from_last > self.save_history_checkpoints_count:
            raise ValueError("`epoch_from_last` should be less than or equal "
                             "`self.save_history_checkpoints_count`.")
        if self.save_history_checkpoints_count < 1:
            raise ValueError("save_history_checkpoints_count should be 1 or higher. "
                             "Else set it to None to completely disable this feature.")
        for history_idx in range(epoch_from_last, 0, -1):
            history_file_name = self.history_file_name.format(history_idx)
            if os.path.exists(history_file_name):
                return history_file_name
        return None
