# A 2.0a7.post1 experiment built on mlpipeline.pytorch, written as its users wrote theirs.
import torch
from mlpipeline import Versions, MetricContainer, iterator
from mlpipeline.base import DataLoaderCallableWrapper
from mlpipeline.entities import ExecutionModeKeys
from mlpipeline.pytorch import (BaseTorchExperimentABC,
                                BaseTorchDataLoader,
                                DatasetBasicABC,
                                DatasetFactory)


class Splits():
    """The three splits (what 2.x's mlpipeline.utils.Datasets held)."""
    def __init__(self, n):
        points = [(i / n, 2.0 * i / n + 1.0) for i in range(n)]
        self.train_dataset = points[:n - 8]
        self.test_dataset = points[n - 8:n - 4]
        self.validation_dataset = points[n - 4:]


class Points(DatasetBasicABC):
    def __getitem__(self, idx):
        x, y = self.current_data[idx]
        return torch.tensor([x]), torch.tensor([y])


class Experiment(BaseTorchExperimentABC):
    def setup_model(self):
        super().setup_model()
        torch.manual_seed(0)
        self.model = torch.nn.Linear(1, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.current_version.lr)
        self.criterion = torch.nn.MSELoss()
        self.lr_scheduler = None

    def train_loop(self, input_fn, **kwargs):
        metric_container = MetricContainer(["loss"])
        self.log("Remaining epochs: {}".format(self.current_version.epoch_count - self.epochs_params))
        self.model.train()
        for epoch in iterator(range(self.epochs_params, self.current_version.epoch_count), 2):
            metric_container.reset_epoch()
            for x, y in input_fn:
                loss = self.criterion(self.model(x), y)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                metric_container.loss.update(loss.item(), 1)
            self.log("epoch {} loss {:.6f}".format(epoch, metric_container.loss.avg_epoch()))
            self.save_checkpoint(epoch)
        return metric_container

    def evaluate_loop(self, input_fn, **kwargs):
        metric_container = MetricContainer(["loss"])
        self.model.eval()
        with torch.no_grad():
            for x, y in input_fn:
                metric_container.loss.update(self.criterion(self.model(x), y).item(), 1)
        return metric_container

    def post_execution_hook(self, mode, **kwargs):
        ancient = self.get_ancient_checkpoint_file_name()
        self.log("ancient: {}".format(None if ancient is None else ancient.split("/")[-1]))
        validation = [x.item() for x, _ in self.dataloader.get_validation_input()]
        self.log("validation inputs: {}".format(len(validation)))


loader = DataLoaderCallableWrapper(BaseTorchDataLoader,
                                   datasets=Splits(40),
                                   pytorch_dataset_factory=DatasetFactory(Points),
                                   batch_size=4)
v = Versions(loader, 4, 3)
v.add_version("lr-small", lr=0.1)
v.add_version("lr-big", lr=0.3, epoch_count=4)
EXPERIMENT = Experiment(v)
