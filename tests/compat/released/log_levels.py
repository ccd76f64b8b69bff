# utils.log levels in the file: INFO is "INFO", every other level is written as "ERROR";
# a level below the logger's still reaches the file.
import logging
import os
import tempfile

from _observe import record, log_lines, done
from mlpipeline.utils import log, set_logger
from mlpipeline.helper import Model
from mlpipeline.utils import Versions, console_colors

path = os.path.join(tempfile.mkdtemp(), "log")
set_logger(test_mode=False, no_log=False, log_file=path)
log("debug line", logging.DEBUG)
log("critical line", logging.CRITICAL)
log("numeric level", 20)
model = Model(Versions(0.1, "dl", 1, 1))
model.log("coloured model line", True, modifier_1=console_colors.RED_FG, level=logging.WARNING)
record("lines", log_lines(path))
done()
