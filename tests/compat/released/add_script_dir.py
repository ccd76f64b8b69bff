# add_script_dir_to_PATH(dir): the dir goes first on sys.path, once, and a line is logged.
import io
import os
import sys
import tempfile

from _observe import record, log_lines, done
from mlpipeline.utils import add_script_dir_to_PATH, set_logger

folder = tempfile.mkdtemp()
path = os.path.join(folder, "log")
set_logger(test_mode=False, no_log=False, log_file=path)
target = os.path.join(folder, "scripts")
before = list(sys.path)
record("returned", add_script_dir_to_PATH(target))
record("first", sys.path[0] == target)
record("rest_kept", sys.path[1:] == before)
add_script_dir_to_PATH(target)
record("once", sys.path.count(target))
relative = "rel/dir"
add_script_dir_to_PATH(relative)
record("relative_kept_as_given", sys.path[0])
record("lines", [line.split(" New PYTHONPATH")[0].replace(folder, "<tmp>") for line in log_lines(path)])
done()
