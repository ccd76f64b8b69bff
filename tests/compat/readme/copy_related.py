# _collect_related_files + copy_related_files: the script and modules imported from its folder.
import os
import sys
import tempfile

from _observe import record, log_lines, done
from mlpipeline.utils import Versions, set_logger, copy_related_files, _collect_related_files
from mlpipeline.helper import Model

root = tempfile.mkdtemp()
log_path = os.path.join(root, "log")
set_logger(test_mode=False, no_log=False, log_file=log_path)
models = os.path.join(root, "models")
os.makedirs(models)
with open(os.path.join(models, "helper_mod.py"), "w") as handle:
    handle.write("X = 1\n")
script = os.path.join(models, "script.py")
with open(script, "w") as handle:
    handle.write("# the model script\n")
sys.path.insert(0, models)
import helper_mod  # noqa: E402,F401

model = Model(Versions("dl", 1, 1))
_collect_related_files(model, models, [script])
dst = os.path.join(root, "out", "deep")
copy_related_files(model, dst)
record("copied", sorted(os.listdir(dst)))
model.copy_related_files(os.path.join(root, "again"))
record("copied_again", sorted(os.listdir(os.path.join(root, "again"))))
record("lines", [line.replace(root, "<root>") for line in log_lines(log_path)])
done()
