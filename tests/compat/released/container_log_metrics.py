# MetricContainer.log_metrics: the returned text and the lines it logs, for the row and
# character limits, complete_epoc, a subset of names and log_to_file=False.
import os
import sys
import tempfile

from _observe import record, log_lines, done
from mlpipeline.utils import MetricContainer, set_logger

log_file = os.path.join(tempfile.mkdtemp(), "log")
set_logger(test_mode=False, no_log=False, log_file=log_file)
mc = MetricContainer(["a", "b", "c", "2", "long_metric_name", "e"])
for i, m in enumerate(mc.values()):
    m.update(i * 1.5, 1)
    m.update(i, 2)
mc.reset_epoc(["a"])
mc.a.update(7)
results = [
    mc.log_metrics(),
    mc.log_metrics(["a", "2"]),
    mc.log_metrics(items_per_row=2),
    mc.log_metrics(charachters_per_row=20),
    mc.log_metrics(charachters_per_row=10, items_per_row=1),
    mc.log_metrics(complete_epoc=True),
    mc.log_metrics("along", log_to_file=False),  # a str: names it contains are selected
    mc.log_metrics(["zz"]),
]
record("returned", results)
record("file_lines", log_lines(log_file))
done()
