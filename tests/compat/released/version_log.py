# VersionLog: the original's executed/executing bookkeeping.
from _observe import record, done
from mlpipeline.utils import VersionLog

log = VersionLog()
record("constants", [VersionLog.EXECUTED, VersionLog.EXECUTING, VersionLog.NOT_EXECUTED])
record("fresh", [log.executed_versions, log.executing_version, log.executing_v_time])
log.addExecutingVersion("v1", 12.5)
record("executing", [log.executed("v1"), log.executed("v2"), log.executing_v_time])
log.moveExecutingToExecuted()
record("moved", [log.executed("v1"), log.executed_versions, log.executing_version, log.executing_v_time])
log.addExecutedVersion("v3")
record("added", log.executed_versions)
log.clean()
record("clean", [log.executed_versions, log.executing_version, log.executed("v1")])
done()
