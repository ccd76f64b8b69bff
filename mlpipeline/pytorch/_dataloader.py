"""2.x's ``BaseTorchDataLoader`` and ``DatasetFactory``: a version's data as ``torch.utils.data.DataLoader``s
over datasets a factory makes for each split (torch is imported when an input is made)."""
from typing import Any

from ..base import DataLoaderABC
from ..entities import ExecutionModeKeys

__all__ = ["BaseTorchDataLoader", "DatasetFactory"]  # and DatasetBasicABC, on first use (below)


class BaseTorchDataLoader(DataLoaderABC):
    """A dataloader over ``datasets`` (any object with ``train_dataset``, ``test_dataset`` and
    ``validation_dataset``): each input is a torch ``DataLoader`` over what ``pytorch_dataset_factory``
    makes of a split — shuffled, in batches of ``batch_size`` for training, one sample at a time otherwise."""

    def __init__(self, datasets: Any, pytorch_dataset_factory: Any, batch_size: int = 1,
                 train_transforms: Any = [], test_transforms: Any = []):  # noqa: B006 - the original's defaults
        super().__init__()
        self.datasets = datasets
        self.pytorch_dataset_factory = pytorch_dataset_factory
        self.batch_size = batch_size
        self.train_transforms = train_transforms
        self.test_transforms = test_transforms

    def get_dataloader_summery(self, **kargs: Any) -> Any:
        return self.summery

    def get_train_sample_count(self) -> int:
        return len(self.datasets.train_dataset)

    def get_test_sample_count(self) -> int:
        return len(self.datasets.test_dataset)

    def get_train_input(self, mode: Any, **kwargs: Any) -> Any:  # type: ignore[override]  # 2.x: mode required
        """The train split, shuffled: in batches of ``batch_size`` with the train transforms for
        ``ExecutionModeKeys.TRAIN``, else one sample at a time with the test transforms."""
        import torch.utils.data

        self.log("batch size: {}, mode: {}".format(self.batch_size, mode))
        training = mode == ExecutionModeKeys.TRAIN
        dataset = self.pytorch_dataset_factory.create_instance(
            current_data=self.datasets.train_dataset,
            transform=self.train_transforms if training else self.test_transforms,
            mode=ExecutionModeKeys.TRAIN if training else ExecutionModeKeys.TEST)
        return torch.utils.data.DataLoader(dataset, batch_size=self.batch_size if training else 1, shuffle=True,
                                           collate_fn=dataset.collate_fn)

    def get_test_input(self, data: Any = None, **kargs: Any) -> Any:
        """``data`` (default: the test split) one sample at a time, in order, with the test transforms."""
        import torch.utils.data

        if data is None:
            data = self.datasets.test_dataset
        dataset = self.pytorch_dataset_factory.create_instance(current_data=data, transform=self.test_transforms,
                                                               mode=ExecutionModeKeys.TEST)
        return torch.utils.data.DataLoader(dataset, batch_size=1, collate_fn=dataset.collate_fn)

    def get_validation_input(self, **kwargs: Any) -> Any:
        return self.get_test_input(self.datasets.validation_dataset)


class DatasetFactory:
    """Makes the dataset objects a ``BaseTorchDataLoader`` reads: ``dataset_class(**args)``, given the split's
    data, its mode and its transforms; its ``collate_fn`` is torch's default unless the class has one."""

    def __init__(self, dataset_class: Any, **args: Any):
        self.dataset_class = dataset_class
        self.args = args

    def create_instance(self, current_data: Any, mode: Any, transform: Any) -> Any:
        import torch.utils.data.dataloader

        obj = self.dataset_class(**self.args)
        obj._inject_params(current_data, mode, transform)
        obj.collate_fn = getattr(obj, "collate_fn", torch.utils.data.dataloader.default_collate)
        return obj


def __getattr__(name: str) -> Any:  # 2.x kept DatasetBasicABC here: named, it imports torch
    if name == "DatasetBasicABC":
        from ._dataset import DatasetBasicABC

        return DatasetBasicABC
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
