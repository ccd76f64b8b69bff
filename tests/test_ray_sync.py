"""A node that does not share the runner's outputs/ sends the version's model
dir and run dir back in one archive; the runner writes them where a local run
would have. (The Ray tests in tests/ray run on one machine, which shares.)"""
from __future__ import annotations

import io
import os
import tarfile

from mlpipeline.execution import node


def test_model_and_run_dirs_round_trip(tmp_path):
    model, run = tmp_path / "node" / "model", tmp_path / "node" / "run"
    (model / "ckpt").mkdir(parents=True)
    run.mkdir(parents=True)
    (model / "ckpt" / "weights.bin").write_bytes(os.urandom(4096))
    (model / "script.py").write_text("MODEL = None\n")
    (run / "results.json").write_text('{"test": {"text": "ok"}}')
    os.symlink("/etc/passwd", model / "outside")  # a link is not followed, nor sent
    data = node._pack(str(model), str(run))
    assert data is not None
    here_model, here_run = tmp_path / "runner" / "model", tmp_path / "runner" / "run"
    node.unpack(data, str(here_model), str(here_run))
    assert (here_model / "ckpt" / "weights.bin").read_bytes() == (model / "ckpt" / "weights.bin").read_bytes()
    assert (here_model / "script.py").read_text() == "MODEL = None\n"
    assert (here_run / "results.json").read_text() == '{"test": {"text": "ok"}}'
    assert not (here_model / "outside").exists()


def test_an_archive_cannot_write_outside_the_dirs(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("model_dir/../../escaped.txt", "model_dir//abs.txt", "other/x.txt", "model_dir/fine.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            archive.addfile(info, io.BytesIO(b"hi"))
    model = tmp_path / "a" / "model"
    node.unpack(buffer.getvalue(), str(model), str(tmp_path / "a" / "run"))
    assert (model / "fine.txt").read_text() == "hi"
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "a" / "escaped.txt").exists()
    assert sorted(p.name for p in tmp_path.rglob("*.txt")) == ["fine.txt"]


def test_too_big_a_model_dir_is_left_on_its_node(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "big.bin").write_bytes(b"x" * 2048)
    monkeypatch.setattr(node, "SYNC_LIMIT", 1024)
    assert node._pack(str(model), None) is None
