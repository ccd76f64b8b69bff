# In the style of the original's example between e23efc4 and 2a73cfd: the released
# Versions/addV API with hooks in the version, copy_related_files("models/exports")
# called by the model, and a MetricContainer returned by evaluate_model.
import os

from mlpipeline.utils import ExecutionModeKeys, MetricContainer, Versions, version_parameters, log
from mlpipeline.helper import Model, DataLoader


def double(x):
    return 2 * x


class Loader(DataLoader):
    def __init__(self):
        self.log("creating dataloader")
        self.add_to_summery("numbers 0..9")

    def get_train_sample_count(self):
        return 10

    def get_test_sample_count(self):
        return 10

    def get_train_input(self, **kargs):
        return lambda: list(range(10))

    def get_test_input(self):
        return lambda: list(range(10, 20))


class Hooks(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode=ExecutionModeKeys.TEST):
        self.current_version = version
        self.hooks = version[version_parameters.HOOKS]
        self.model_dir = model_dir

    def get_current_version(self):
        return self.current_version

    def get_trained_step_count(self):
        return None

    def train_model(self, input_fn, steps):
        self.total = sum(hook(x) for hook in self.hooks for x in input_fn())
        self.add_to_summery("total {}".format(self.total))
        log("trained {} steps".format(steps))
        self.copy_related_files("models/exports")

    def evaluate_model(self, input_fn, steps):
        metrics = MetricContainer(["mean", "total"])
        data = input_fn()
        metrics.mean.update(sum(data), len(data))
        metrics.total.update(self.total)
        return metrics


v = Versions(0.01, Loader(), 5, 1, hooks=[double])
v.addV("double")
v.addV("double_twice", hooks=[double, double], learning_rate=0.1)
MODEL = Hooks(versions=v)
