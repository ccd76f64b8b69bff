# utils.log with set_logger(test_mode=False, no_log=False, log_file): what reaches the file.
import logging
import os
import tempfile

from _observe import record, log_lines, done
from mlpipeline.utils import log, set_logger, console_colors

folder = tempfile.mkdtemp()
path = os.path.join(folder, "log")
set_logger(test_mode=False, no_log=False, log_file=path)
log("plain message")
log("a warning", logging.WARNING)
log("an error", level=logging.ERROR)
log("not to file", log_to_file=False)
log("coloured", modifier_1=console_colors.RED_FG, modifier_2=console_colors.BOLD)
log("only second", modifier_2=console_colors.GREEN_FG)
log("list [1, 2] and [x]")
log(12345)
record("lines", log_lines(path))
quiet = os.path.join(folder, "quiet")
set_logger(test_mode=True, no_log=False, log_file=quiet)
log("test mode")
set_logger(test_mode=False, no_log=True, log_file=quiet)
log("no log")
record("quiet_exists", os.path.exists(quiet))
done()
