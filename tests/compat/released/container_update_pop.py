# MetricContainer.update and pop behave as the original's EasyDict: Metrics merged, popped ones gone.
from _observe import record, attempt, done
from mlpipeline.utils import MetricContainer, Metric

mc = MetricContainer(["a", "b"])
mc.update({"c": Metric()}, d=Metric())
record("keys", list(mc))
record("attr", mc.c is mc["c"])
attempt("update_number", lambda: mc.update({"e": 1.0}), TypeError)
popped = mc.pop("a")
record("popped_metric", isinstance(popped, Metric))
record("keys_after_pop", list(mc))
record("attr_after_pop", hasattr(mc, "a"))
record("pop_default", mc.pop("zz", "dflt"))
done()
