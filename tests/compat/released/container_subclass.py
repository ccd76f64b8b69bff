# A MetricContainer subclass: its own class attributes become items too (as EasyDict does),
# methods included, when metrics are given; not when the container is built empty.
from _observe import record, done
from mlpipeline.utils import MetricContainer, Metric

SHARED = Metric()


class Losses(MetricContainer):
    total = SHARED

    def describe(self):
        return "losses"


with_metrics = Losses(["a"])
record("keys", sorted(with_metrics))
record("shared", with_metrics.total is SHARED and with_metrics["total"] is SHARED)
record("method_item", callable(with_metrics["describe"]))
empty = Losses()
record("empty_keys", sorted(empty))
record("empty_attr", empty.total is SHARED)
done()
