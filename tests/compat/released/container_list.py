# MetricContainer(['a', 'b']): Metrics as items and attributes, a dict, the track count passed on.
from _observe import record, done
from mlpipeline.utils import MetricContainer, Metric

mc = MetricContainer(["a", "b", "1"], track_average_epoc_count=4)
record("keys", list(mc))
record("is_dict", isinstance(mc, dict))
record("attr_is_item", mc.a is mc["a"])
record("all_metrics", all(isinstance(m, Metric) for m in mc.values()))
record("tracks", [m.track_average_epoc_count for m in mc.values()])
mc.a.update(3)
mc["b"].update(5, 2)
record("avgs", {k: m.avg() for k, m in mc.items()})
record("len", len(mc))
done()
