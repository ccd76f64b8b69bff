# MetricContainer([{'metrics': [...], 'track_average_epoc_count': N}, ...]): per-group track counts.
from _observe import record, done
from mlpipeline.utils import MetricContainer

mc = MetricContainer(metrics=[{"metrics": ["a", "b", "c"]},
                              {"metrics": ["2", "d", "e"], "track_average_epoc_count": 10},
                              {"metrics": ["a"], "track_average_epoc_count": 3}],
                     track_average_epoc_count=5)
record("keys", list(mc))
record("tracks", {k: m.track_average_epoc_count for k, m in mc.items()})
done()
