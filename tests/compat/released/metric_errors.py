# Metric: bad values and bad track_average_epoc_count.
from _observe import record, attempt, done
from mlpipeline.utils import Metric

m = Metric()
attempt("str_value", lambda: m.update("1"))
attempt("none_value", lambda: m.update(None))
attempt("list_value", lambda: m.update([1.0]))
record("unchanged", [m.value, m.count])
attempt("track_zero", lambda: Metric(0), ValueError)
attempt("track_negative", lambda: Metric(track_average_epoc_count=-1), ValueError)
record("track_positional", Metric(3).track_average_epoc_count)
done()
