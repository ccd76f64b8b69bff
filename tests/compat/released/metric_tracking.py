# get_tracking_average / get_tracking_delta / get_tracking_stdev over a window of epochs.
from _observe import record, done
from mlpipeline.utils import Metric

for window in (1, 2, 4):
    m = Metric(track_average_epoc_count=window)
    seen = []
    for epoch, values in enumerate([(1, 3), (4,), (2, 2, 8), (0.5,), (9, 1)]):
        for value in values:
            m.update(value)
        seen.append([m.get_tracking_average(), m.get_tracking_delta(), m.get_tracking_stdev()])
        m.reset_epoc()
        seen.append([m.get_tracking_average(), m.get_tracking_delta(), m.get_tracking_stdev(),
                     list(m.track_value_list)])
    record("window_%d" % window, seen)
done()
