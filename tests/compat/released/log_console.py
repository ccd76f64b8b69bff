# set_logger: the 'mlp' logger it returns and the console lines log() prints (timestamps cut).
import io
import logging
import sys

from _observe import record, done
from mlpipeline.utils import log, set_logger, console_colors

buffer = io.StringIO()
real, sys.stdout = sys.stdout, buffer
logger = set_logger()
log("hello")
log("careful", logging.WARNING, modifier_1=console_colors.YELLOW_FG)
sys.stdout = real
record("lines", [line[19:] for line in buffer.getvalue().splitlines()])
record("logger", [logger.name, logger.level, len(logger.handlers), logger.TEST_MODE, logger.NO_LOG, logger.LOG_FILE])
record("same_logger", logger is logging.getLogger("mlp"))
done()
