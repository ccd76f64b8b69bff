# ModeKeys, ExecutionModeKeys, console_colors: the values scripts compare against.
from _observe import record, done
from mlpipeline.utils import ModeKeys, ExecutionModeKeys, console_colors

record("ModeKeys", [ModeKeys.TRAIN, ModeKeys.PREDICT, ModeKeys.EVALUATE])
record("ExecutionModeKeys", [ExecutionModeKeys.TRAIN, ExecutionModeKeys.TEST])
names = ["RESET", "BOLD", "BLACK_FG", "RED_FG", "GREEN_FG", "YELLOW_FG", "BLUE_FG", "MEGENTA_FG", "CYAN_FG",
         "WHITE_FG", "BLACK_BG", "RED_BG", "GREEN_BG", "YELLOW_BG", "BLUE_BG", "MEGENTA_BG", "CYAN_BG", "WHITE_BG"]
record("console_colors", {n: getattr(console_colors, n) for n in names})
done()
