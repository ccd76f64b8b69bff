"""The Lightning logger and the Hugging Face callback (issue 20), each in a plain script with a tiny model built
in code (no downloads, CPU): curves and parameters under ``-r``, one step in test mode."""
from __future__ import annotations

import importlib.util
import json

LIGHTNING = """\
import argparse, os
import torch
import lightning as L
from torch.utils.data import DataLoader, TensorDataset
from mlpipeline.integrations.lightning import MLPipelineLogger

class Tiny(L.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, index):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()
torch.manual_seed(0)
data = TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
trainer = L.Trainer(logger=MLPipelineLogger(), max_epochs=args.epochs, log_every_n_steps=1,
                    enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
trainer.fit(Tiny(args.lr), DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))
print("global_step", trainer.global_step, "fast_dev_run", trainer.fast_dev_run)
"""

TRANSFORMERS = """\
import argparse, os
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
from mlpipeline.integrations.transformers import MLPipelineCallback

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=1e-3)
args = parser.parse_args()
torch.manual_seed(0)
config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=16)
model = BertForSequenceClassification(config)

class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 16
    def __getitem__(self, index):
        ids = torch.randint(1, 40, (8,), generator=torch.Generator().manual_seed(index))
        return {"input_ids": ids, "attention_mask": torch.ones(8, dtype=torch.long), "labels": index % 2}

training = TrainingArguments(output_dir=os.environ["MLPIPELINE_MODEL_DIR"], learning_rate=args.lr, max_steps=6,
                             per_device_train_batch_size=4, logging_steps=1, eval_strategy="steps",
                             eval_steps=3, save_strategy="no", report_to=[], use_cpu=True,
                             disable_tqdm=True)
trainer = Trainer(model=model, args=training, train_dataset=Data(), eval_dataset=Data(),
                  callbacks=[MLPipelineCallback()])
trainer.train()
print("global_step", trainer.state.global_step)
"""


def _installed(package: str) -> None:
    """The framework is there (make install puts it in; checked without importing it here, where the
    other tests watch which modules this process has)."""
    assert importlib.util.find_spec(package) is not None, f"{package} is not installed: pip install -e '.[integrations]'"


def _project(project, name: str, text: str, line: str):
    project.script(name, text)
    config = f"[WHITELISTED_MODELS]\n{name}\n\n[{name}]\n{line}\n"
    project.write("models.config", config)
    project.write("models_test.config", config)


def _curves(project, run_id: int):
    with project.db() as conn:
        return {(r[0], r[1]): r[2] for r in conn.execute(
            "SELECT split, name, count FROM metric_summary WHERE run_id = ?", (run_id,))}


def _output(project, run_id: int) -> str:
    return (project.outputs / "runs" / str(run_id) / "output.log").read_text()


def test_lightning_logger_records_curves_params_and_checkpoints_and_test_mode_is_one_step(project) -> None:
    _installed("lightning")
    _project(project, "lit.py", LIGHTNING, "base = --lr 0.05 --epochs 3")
    result = project.run("-r", timeout=300)
    assert result.returncode == 0, result.stderr
    run = project.runs()[0]
    curves = _curves(project, run["id"])
    assert curves[("train", "loss")] == 12 and curves[("val", "loss")] == 3, curves   # 4 batches x 3 epochs
    params = json.loads(run["params"])
    assert params["lr"] == 0.05 and params["epochs"] == 3
    model_dir = project.root / run["model_dir"]
    assert list((model_dir / "checkpoints").glob("*.ckpt")), sorted(p.name for p in model_dir.rglob("*"))
    assert "global_step 12" in _output(project, run["id"])

    test = project.run(timeout=300)
    assert test.returncode == 0, test.stderr
    run = project.runs()[-1]
    assert run["mode"] == "test" and "global_step 1 fast_dev_run True" in test.stdout + test.stderr


def test_transformers_callback_records_train_and_eval_curves_and_test_mode_is_one_step(project) -> None:
    _installed("transformers")
    _project(project, "hf.py", TRANSFORMERS, "base = --lr 0.002")
    result = project.run("-r", timeout=300)
    assert result.returncode == 0, result.stderr
    run = project.runs()[0]
    curves = _curves(project, run["id"])
    assert curves[("train", "loss")] == 6 and curves[("eval", "loss")] == 2, curves
    params = json.loads(run["params"])
    assert params["lr"] == 0.002 and params["learning_rate"] == 0.002 and params["max_steps"] == 6
    with project.db() as conn:
        steps = [r[0] for r in conn.execute("SELECT step FROM metrics WHERE run_id = ? AND split = 'eval' AND "
                                            "name = 'loss' ORDER BY step", (run["id"],))]
    assert steps == [3, 6]

    test = project.run(timeout=300)
    assert test.returncode == 0, test.stderr
    assert "global_step 1" in test.stdout + test.stderr


IN_A_MODEL = """\
import torch
import lightning as L
from torch.utils.data import DataLoader as Batches, TensorDataset
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions
from mlpipeline.integrations.lightning import MLPipelineLogger

class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
    def training_step(self, batch, index):
        loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

class Data(DataLoader):
    def get_train_input(self, mode=None, **kw): return None
    def get_test_input(self, **kw): return None
    def get_train_sample_count(self): return 1
    def get_test_sample_count(self): return 1

class Lit(Model):
    def train_model(self, input_fn, steps):
        torch.manual_seed(0)
        data = TensorDataset(torch.randn(16, 2), torch.randn(16, 1))
        trainer = L.Trainer(logger=MLPipelineLogger(), max_epochs=2, log_every_n_steps=1, accelerator="cpu",
                            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
        trainer.fit(Tiny(), Batches(data, batch_size=4))
        self.steps = trainer.global_step
    def evaluate_model(self, input_fn, steps):
        return {"steps": self.steps}

versions = Versions(Data(), 1, 1)
versions.add_version("v")
MODEL = Lit(versions)
"""


def test_the_lightning_logger_inside_a_model(project) -> None:
    _installed("lightning")
    project.script("lit_model.py", IN_A_MODEL)
    project.configure(["lit_model.py"])
    result = project.run("-r", timeout=300)
    assert result.returncode == 0, result.stderr
    run = project.runs()[0]
    assert _curves(project, run["id"])[("train", "loss")] == 8       # 4 batches x 2 epochs
    test = project.run(timeout=300)                                  # test mode: fast_dev_run, one step
    assert test.returncode == 0, test.stderr
    with project.db() as conn:
        steps = conn.execute("SELECT value FROM metrics WHERE run_id = ? AND name = 'steps'",
                             (project.runs()[-1]["id"],)).fetchone()
    assert steps is not None and steps[0] == 1.0, steps
