# Edge cases of Metric/MetricContainer arithmetic: zero and fractional counts, negative values,
# duplicate names, items_per_row=1, an epoch closed twice, tracking with a window of 1.
from _observe import record, attempt, done
from mlpipeline.utils import Metric, MetricContainer, set_logger

set_logger()
m = Metric()
m.update(5, 0)
record("zero_count", [m.avg(), m.value, m.count, m.avg_epoc()])
m.update(-2.5, 0.5)
record("fraction", [m.avg(), m.value, m.count])
m.reset_epoc()
m.reset_epoc()
record("twice", [m.track_value_list, m.get_tracking_average(), m.get_tracking_delta(), m.get_tracking_stdev()])
mc = MetricContainer(["a", "a", "b"])
record("duplicates", list(mc))
mc.a.update(1)
record("one_per_row", mc.log_metrics(items_per_row=1))
attempt("zero_per_row", lambda: mc.log_metrics(items_per_row=0), ZeroDivisionError)
record("none_selected", mc.log_metrics([]))
record("tuple_selected", mc.log_metrics(("b",)))
done()
