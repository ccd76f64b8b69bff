# c8e2ef6's MetricContainer: log_metrics(name_prefix=...), and item assignment checked like attributes.
import os
import tempfile

from _observe import record, attempt, log_lines, done
from mlpipeline.utils import MetricContainer, Metric, set_logger

path = os.path.join(tempfile.mkdtemp(), "log")
set_logger(test_mode=False, no_log=False, log_file=path)
mc = MetricContainer(["a", "b"])
mc.a.update(10, 1)
mc.b.update(2, 1)
record("returned", mc.log_metrics(complete_epoc=True, name_prefix="TRAIN_"))
attempt("setitem_number", lambda: mc.__setitem__("x", 1.0), TypeError)
mc["y"] = Metric()
record("keys", list(mc))
record("attr_is_item", mc.y is mc["y"])
record("lines", log_lines(path))
done()
