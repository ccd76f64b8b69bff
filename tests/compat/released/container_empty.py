# MetricContainer() is empty; Metrics may be assigned as attributes, anything else is refused.
from _observe import record, attempt, done
from mlpipeline.utils import MetricContainer, Metric

mc = MetricContainer()
record("len", len(mc))
mc.loss = Metric()
record("keys", list(mc))
record("attr_is_item", mc.loss is mc["loss"])
attempt("set_number", lambda: setattr(mc, "acc", 0.5), TypeError)
record("keys_after", list(mc))
attempt("missing_attr", lambda: mc.nope, AttributeError)
attempt("missing_item", lambda: mc["nope"], KeyError)
done()
