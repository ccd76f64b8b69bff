"""``mlpipeline.global_values``: the original 1.x module-level settings, kept importable.

mlpipeline does not read these; they hold the original's defaults so scripts
that import them keep working.
"""

MODELS_DIR = "models"
OUTPUT_FILE = MODELS_DIR + "/output"
HISTORY_FILE = MODELS_DIR + "/history"
TRAINING_HISTORY_LOG_FILE = MODELS_DIR + "/t_history"
LOG_FILE = MODELS_DIR + "/log"
NO_LOG = False
EXECUTED_MODELS: dict = {}

# With USE_BLACKLIST, LISTED_MODELS lists blacklisted scripts, else whitelisted ones.
USE_BLACKLIST = True
LISTED_MODELS: list = []

TEST_MODE = True

mtime = "mtime"
version = "version"
train_time = "train_time"
vless = "vless"
