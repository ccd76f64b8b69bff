# Metric.update(value, count): running and per-epoch sums, avg(), avg_epoc(), .value, .count.
from _observe import record, done
from mlpipeline.utils import Metric

m = Metric()
record("fresh", [m.value, m.count, m.avg(), m.avg_epoc(), m.epoc_value, m.epoc_count])
m.update(1)
m.update(2.5, 3)
m.update(4, count=2)
record("after", [m.value, m.count, m.avg(), m.avg_epoc(), m.epoc_value, m.epoc_count])
m.update(True)
record("bool", [m.value, m.count])
done()
