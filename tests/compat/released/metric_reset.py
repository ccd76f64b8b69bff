# Metric.reset clears the running sums only; reset_epoc closes an epoch.
from _observe import record, done
from mlpipeline.utils import Metric

m = Metric(track_average_epoc_count=3)
for value in (1, 2, 3):
    m.update(value)
m.reset()
record("after_reset", [m.value, m.count, m.avg(), m.epoc_value, m.epoc_count, m.avg_epoc()])
m.update(10, 2)
m.reset_epoc()
record("after_reset_epoc", [m.value, m.count, m.avg(), m.epoc_value, m.epoc_count, m.avg_epoc(),
                            m.track_value_list])
m.reset_epoc()  # an empty epoch tracks 0
record("empty_epoch", m.track_value_list)
done()
