# mlpipeline.global_values: every name and its value.
from _observe import record, done
import mlpipeline.global_values as g

names = ["MODELS_DIR", "OUTPUT_FILE", "HISTORY_FILE", "TRAINING_HISTORY_LOG_FILE", "LOG_FILE", "NO_LOG",
         "EXECUTED_MODELS", "USE_BLACKLIST", "LISTED_MODELS", "TEST_MODE", "mtime", "version", "train_time", "vless"]
record("values", {n: getattr(g, n) for n in names})
done()
