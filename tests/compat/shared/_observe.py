"""Shared by the compat fixture scripts (on their PYTHONPATH): record observations, write them as JSON to argv[1].

Runs under the original mlpipeline 1.x and under this project, so it only uses
the standard library.
"""
import json
import re
import sys

OBS = {}


def plain(value):
    """JSON data for an observed value; objects become '<ClassName>' (no addresses)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if callable(value):
        return "<callable>"
    return "<{}>".format(type(value).__name__)


def record(key, value):
    OBS[key] = plain(value)


def attempt(key, fn, expect=Exception):
    """Record fn()'s value, or that it raised (and whether the error is an ``expect``)."""
    try:
        record(key, fn())
    except Exception as exc:  # noqa: BLE001 - observing what the API raises
        OBS[key] = {"raised": True, "is_" + expect.__name__: isinstance(exc, expect)}


def log_lines(path):
    """The log file's lines without their [timestamp]:: prefix."""
    try:
        with open(path, encoding="utf-8") as handle:
            return [re.sub(r"^\[[^\]]*\]::", "", line.rstrip("\n")) for line in handle]
    except FileNotFoundError:
        return None


def done():
    with open(sys.argv[1], "w", encoding="utf-8") as handle:
        json.dump(OBS, handle, indent=1, sort_keys=True)
