# README-era model script in the style of the original's example project (ml-pipeline
# fe5ea94/c8e2ef6, examples/sample-project/models/sample_model.py): a toy model class,
# Versions(dataloader, batch_size, epoc_count) with add_version, grouped metrics,
# add_script_dir_to_PATH, copy_related_files and a MetricContainer returned by evaluate_model.
import os
import sys

from mlpipeline.utils import add_script_dir_to_PATH
from mlpipeline.utils import ExecutionModeKeys
from mlpipeline.utils import Versions
from mlpipeline.utils import MetricContainer
from mlpipeline.helper import Model
from mlpipeline.helper import DataLoader

add_script_dir_to_PATH(os.path.dirname(os.path.abspath(__file__)))
import toy_layers  # noqa: E402
from observe import Recorder  # noqa: E402

REC = Recorder()


class An_ML_Model():
    def __init__(self, hyperparameter="default value"):
        self.hyperparameter = hyperparameter

    def train(self):
        return "Trained using {}".format(self.hyperparameter)


class TestingDataLoader(DataLoader):
    def __init__(self):
        self.log("creating dataloader")

    def get_train_sample_count(self):
        return 100

    def get_test_sample_count(self):
        return 20

    def get_train_input(self, **kargs):
        return lambda: "got input form train input function"

    def get_test_input(self):
        return lambda: "got input form test input function"


class TestingModel(Model):
    def __init__(self, versions, **args):
        super().__init__(versions, **args)
        self.model = An_ML_Model()

    def pre_execution_hook(self, version, model_dir, exec_mode=ExecutionModeKeys.TEST):
        REC.start(self.name, version.hyperparameter)
        self.log("Pre execution")
        self.log("Version spec: {}".format(version))
        self.model.hyperparameter = version["hyperparameter"]
        self.current_version = version
        self.model_dir = model_dir
        REC.add("pre_execution_hook", sorted(version), version.batch_size, version.epoc_count, version.order)

    def get_current_version(self):
        return self.current_version

    def get_trained_step_count(self):
        return 10

    def train_model(self, input_fn, steps):
        metric_container = MetricContainer(metrics=[{'metrics': ['a', 'b', 'c']},
                                                    {'metrics': ['2', 'd', 'e'], 'track_average_epoc_count': 10}],
                                           track_average_epoc_count=5)
        self.log("steps: {}".format(steps))
        input_fn()
        for epoc in range(3):
            for idx in range(6):
                metric_container.a.update(idx)
                metric_container.b.update(toy_layers.scale(idx, 2))
                if idx % 3 == 0:
                    metric_container.reset()
            metric_container.log_metrics(['a', '2'])
            metric_container.reset_epoc()
        REC.add("train_model", steps, metric_container.log_metrics(),
                [m.get_tracking_average() for m in metric_container.values()])
        self.log("trained: {}".format(self.model.train()))
        self.copy_related_files("models/exports")
        return metric_container

    def evaluate_model(self, input_fn, steps):
        REC.add("evaluate_model", steps, input_fn(), sorted(os.listdir(self.model_dir)))
        metrics = MetricContainer(['a', 'b'])
        metrics.a.update(10, 1)
        metrics.b.update(2, 1)
        return metrics


dl = TestingDataLoader()
v = Versions(dl, 10, 3)
v.add_version("version1", hyperparameter="a hyperparameter")
v.add_version("version2", custom_paramters={"hyperparameter": "other"}, batch_size=20)
MODEL = TestingModel(versions=v)
