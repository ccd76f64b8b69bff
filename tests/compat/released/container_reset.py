# MetricContainer.reset(metrics=None) and reset_epoc(metrics=None), on all or some metrics.
from _observe import record, done
from mlpipeline.utils import MetricContainer


def state(mc):
    return {k: [m.value, m.count, m.epoc_value, m.epoc_count, list(m.track_value_list)] for k, m in mc.items()}


mc = MetricContainer(["a", "b", "c"], track_average_epoc_count=2)
for i, m in enumerate(mc.values()):
    m.update(i + 1, 2)
mc.reset(["a"])
record("reset_a", state(mc))
mc.reset_epoc(["b", "c"])
record("reset_epoc_bc", state(mc))
mc.reset()
mc.reset_epoc()
record("reset_all", state(mc))
done()
