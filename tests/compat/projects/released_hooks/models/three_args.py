# Released-API model script in the style of the original's example (ml-pipeline 7f3a99f):
# pre_execution_hook with exec_mode, reset_steps=True, a MetricContainer in training.
from mlpipeline.utils import Versions, ExecutionModeKeys, MetricContainer
from mlpipeline.helper import Model, DataLoader

from observe import Recorder

REC = Recorder()


class Loader(DataLoader):
    def __init__(self):
        pass

    def get_train_sample_count(self):
        return 10

    def get_test_sample_count(self):
        return 5

    def get_train_input(self, mode=None, **kargs):
        return mode

    def get_test_input(self, **kargs):
        return sorted(kargs)


class Reset(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode=ExecutionModeKeys.TEST):
        REC.start(self.name, version["name"])
        REC.add("pre_execution_hook", version["learning_rate"], version["order"], self.summery)
        self.current_version = version

    def get_current_version(self):
        return self.current_version

    def get_trained_step_count(self):
        REC.add("get_trained_step_count")
        return 3

    def clean_model_dir(self, model_dir):
        REC.before_start("clean_model_dir")

    def train_model(self, input_fn, steps):
        metrics = MetricContainer(["loss", "acc"])
        for step in range(int(steps)):
            metrics.loss.update(1.0 / (step + 1))
            metrics.acc.update(step / 10)
        REC.add("train_model", steps, input_fn, metrics.log_metrics())

    def evaluate_model(self, input_fn, steps):
        REC.add("evaluate_model", steps, input_fn)
        return None


v = Versions(0.5, Loader(), 2, 2)
v.addV("only", learning_rate=0.25)
v.addV("second", order=7)
MODEL = Reset(v, reset_steps=True)
