"""Palmer Penguins with PyTorch: the data through mlpipeline.data, a small MLP,
and a random search over its hyperparameters with early stopping (ASHA on the
test accuracy each epoch): Versions.add_search and mlpipeline.sweeps."""
import os
import random

import torch
from torch import nn

from mlpipeline.data import CSVLoader
from mlpipeline.helper import Model
from mlpipeline.sweeps import asha, choice, loguniform, randint
from mlpipeline.utils import ExecutionModeKeys, Versions

HERE = os.path.dirname(os.path.abspath(__file__))
penguins = CSVLoader(os.path.join(HERE, "data", "penguins.csv"), target="species",
                     features=["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"],
                     test_size=0.2, seed=0, batch_size=32)


class PenguinNet(Model):
    """An MLP whose width, depth and learning rate come from the version."""

    def pre_execution_hook(self, version, model_dir, exec_mode=ExecutionModeKeys.TEST):
        torch.manual_seed(0)
        x, _ = penguins.arrays("train")
        self.mean, self.std = torch.tensor(x.mean(0)).float(), torch.tensor(x.std(0) + 1e-6).float()
        layers, width = [], x.shape[1]
        for _ in range(version["layers"]):
            layers += [nn.Linear(width, version["units"]), nn.ReLU()]
            width = version["units"]
        self.net = nn.Sequential(*layers, nn.Linear(width, len(penguins.classes)))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=version["lr"])
        self.checkpoint = os.path.join(model_dir, "model.pt")
        self.epochs = version["epoc_count"]
        if os.path.exists(self.checkpoint):
            state = torch.load(self.checkpoint)
            self.net.load_state_dict(state["net"])
            self.optimizer.load_state_dict(state["optimizer"])

    def train_model(self, input_fn, steps):
        loss_fn = nn.CrossEntropyLoss()
        loader = penguins.to_torch("train", shuffle=True)
        step = 0
        for epoch in range(self.epochs):
            for x, y in loader:
                if step >= steps:
                    break
                loss = loss_fn(self.net((x - self.mean) / self.std), y)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                self.log_metric("loss", loss.item(), step=step)
                step += 1
            self.log_metric("accuracy", self.accuracy(penguins.get_test_input()), step=step, split="test")
        torch.save({"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}, self.checkpoint)

    def evaluate_model(self, input_fn, steps):
        return {"accuracy": self.accuracy(input_fn)}

    def accuracy(self, batches):
        correct = total = 0
        with torch.no_grad():
            for xb, yb in batches:
                predicted = self.net((torch.tensor(xb).float() - self.mean) / self.std).argmax(1)
                correct += int((predicted == torch.tensor(yb)).sum())
                total += len(yb)
        return correct / max(total, 1)


SPACE = {"lr": loguniform(1e-3, 3e-2), "units": choice([8, 16, 32]), "layers": randint(1, 2)}


def propose(history):
    """Random search: the k-th point is drawn with seed k (the history says how many came before)."""
    rng = random.Random(len(history) + len(history.running))
    return {name: dist.sample(rng) for name, dist in SPACE.items()}


versions = Versions(penguins, 32, 20)
# Eight points, two at a time; a point whose test accuracy trails the others after 2, 4, 8 and 16 epochs
# (about 9 steps an epoch) is pruned.
versions.add_search(propose, budget=8, parallel=2, name="rs",
                    stopper=asha("test/accuracy", grace=18, reduction=2, max_t=150, mode="max"))
MODEL = PenguinNet(versions)
