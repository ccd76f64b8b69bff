"""A 2.0a1 … 2.0a7.post1 script's view of mlpipeline.pytorch, outside a run: the datasets a DatasetFactory
makes, the torch DataLoaders a BaseTorchDataLoader gives, and BaseTorchExperimentABC's checkpoints.
Runs under the released 2.0a7.post1 and under this project; argv[2] is a folder to write checkpoints in."""
import os
import sys

import torch
from _observe import attempt, done, record

import mlpipeline.pytorch
from mlpipeline import Versions
from mlpipeline.base import DataLoaderABC, ExperimentABC
from mlpipeline.entities import ExecutionModeKeys
from mlpipeline.pytorch import BaseTorchDataLoader, BaseTorchExperimentABC, DatasetBasicABC, DatasetFactory
from mlpipeline.pytorch._dataloader import DatasetBasicABC as FromDataloader

record("names", sorted(n for n in ("BaseTorchDataLoader", "BaseTorchExperimentABC", "DatasetFactory",
                                   "DatasetBasicABC") if hasattr(mlpipeline.pytorch, n)))
record("bases", [issubclass(DatasetBasicABC, torch.utils.data.Dataset), issubclass(BaseTorchDataLoader, DataLoaderABC),
                 issubclass(BaseTorchExperimentABC, ExperimentABC), FromDataloader is DatasetBasicABC])


class Splits:
    """What 2.x's Datasets held: three splits."""

    def __init__(self, n):
        points = [(i / n, 2.0 * i / n + 1.0) for i in range(n)]
        self.train_dataset = points[:n - 4]
        self.test_dataset = points[n - 4:n - 2]
        self.validation_dataset = points[n - 2:]


class Points(DatasetBasicABC):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

    def __getitem__(self, idx):
        x, y = self.current_data[idx]
        return torch.tensor([x * self.scale]), torch.tensor([y * self.scale])


class Pairs(Points):
    def collate_fn(self, batch):
        return [b[0].item() for b in batch]


empty = DatasetBasicABC()
record("empty", [len(empty), empty.current_data, empty.mode, empty.transform])
attempt("getitem", lambda: empty[0], NotImplementedError)
factory = DatasetFactory(Points, scale=2.0)
record("factory", [factory.dataset_class.__name__, factory.args])
made = factory.create_instance(current_data=[(1.0, 2.0)], mode=ExecutionModeKeys.TRAIN, transform=["t"])
record("made", [type(made).__name__, len(made), made.mode, made.transform, made.scale, made[0][0].tolist(),
                made.collate_fn is torch.utils.data.dataloader.default_collate])
own = DatasetFactory(Pairs).create_instance([(3.0, 1.0)], ExecutionModeKeys.TEST, None)
record("own_collate", own.collate_fn([own[0]]))

splits = Splits(20)
loader = BaseTorchDataLoader(splits, DatasetFactory(Points), batch_size=4, train_transforms=["a"], test_transforms=["b"])
record("counts", [loader.get_train_sample_count(), loader.get_test_sample_count(), loader.get_dataloader_summery()])
for mode in (ExecutionModeKeys.TRAIN, ExecutionModeKeys.TEST):
    dl = loader.get_train_input(mode=mode)
    record("train_input_" + mode, [type(dl).__name__, dl.batch_size, dl.dataset.mode, dl.dataset.transform,
                                   len(dl.dataset), sorted(round(x, 4) for b in dl for x in b[0].flatten().tolist())])
attempt("train_input_no_mode", lambda: loader.get_train_input(), TypeError)
test = loader.get_test_input()
record("test_input", [test.batch_size, test.dataset.mode, test.dataset.transform, [b[0].tolist() for b in test]])
record("validation_input", [[b[1].tolist() for b in loader.get_validation_input()]])
record("given_data", [b[0].tolist() for b in loader.get_test_input(data=[(5.0, 0.0)])])


class Exp(BaseTorchExperimentABC):
    def setup_model(self):
        super().setup_model()
        torch.manual_seed(0)
        self.model = torch.nn.Linear(1, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)


v = Versions(loader, 4, 3)
v.add_version("a")
exp = Exp(v)
record("after_init", [exp.model, exp.topk_k, exp.logging_iteration, exp.criterion, exp.optimizer,
                      exp.checkpoint_saving_per_epoch, exp.use_cuda, exp.save_history_checkpoints_count,
                      exp.allow_delete_experiment_dir, hasattr(exp, "lr_scheduler")])
folder = sys.argv[2]
exp.experiment_dir = folder + "/"
exp.current_version = v.get_version("a")
exp.dataloader = loader
exp.setup_model()
record("files", [exp.history_file_name.replace(folder, "<dir>"), exp.file_name.replace(folder, "<dir>")])
exp.pre_execution_hook(mode="Run")
record("after_hook", [exp.epochs_params, exp.logging_iteration, exp.save_history_checkpoints_count,
                      exp.get_trained_step_count()])
attempt("save_without_scheduler", lambda: exp.save_checkpoint(0), AttributeError)
exp.lr_scheduler = torch.optim.lr_scheduler.StepLR(exp.optimizer, step_size=1)
exp.save_history_checkpoints_count = 3
for epoch in range(5):
    with torch.no_grad():
        exp.model.weight += 1.0
    exp.optimizer.step()
    exp.lr_scheduler.step()
    exp.save_checkpoint(epoch)
record("checkpoints", sorted(os.listdir(folder)))


def name(path):
    return None if path is None else os.path.basename(path)


record("ancient", [name(exp.get_ancient_checkpoint_file_name()), name(exp.get_ancient_checkpoint_file_name(0)),
                   name(exp.get_ancient_checkpoint_file_name(2))])
attempt("ancient_too_far", lambda: exp.get_ancient_checkpoint_file_name(4), ValueError)
weight = exp.model.weight.item()

again = Exp(v)
again.experiment_dir = folder
again.current_version = v.get_version("a")
again.dataloader = loader
again.setup_model()
again.lr_scheduler = torch.optim.lr_scheduler.StepLR(again.optimizer, step_size=1)
again.pre_execution_hook(mode="Run")  # finds model_params0.tch and loads it
record("loaded", [again.epochs_params, again.get_trained_step_count(), round(again.model.weight.item() - weight, 6),
                  again.lr_scheduler.last_epoch])
again.load_history_checkpoint(again.get_ancient_checkpoint_file_name(), export_mode=True)
record("loaded_ancient", [again.epochs_params, round(weight - again.model.weight.item(), 4)])
save_count = Exp(v)
save_count.save_history_checkpoints_count = 0
save_count.experiment_dir = folder
save_count.setup_model()
record("ancient_latest_count_zero", name(save_count.get_ancient_checkpoint_file_name(0)))
attempt("ancient_count_zero", lambda: save_count.get_ancient_checkpoint_file_name(), ValueError)
done()
