"""config_edit: the dashboard's edits to models.config keep every other byte the
user wrote, read back through the runner's own parser as asked, and save
atomically (no temp file left, the file's mode kept, never a torn file)."""
from __future__ import annotations

import errno
import os
import stat
import threading

import pytest

from mlpipeline.plan import config_edit
from mlpipeline.plan.config import Project, read_queue_config, resolve_scripts
from mlpipeline.core.errors import ConfigError, StorageError, UsageError

COMMENTED = """\
# My queue. Keep resnet last: it takes a day.
[MLP]
use_blacklist = False   ; flip to run everything

; the run order
[WHITELISTED_MODELS]
# quick check first
mlp.py
cnn.py = small, large
    huge  ; continued

resnet.py

# things that do not work yet
[BLACKLISTED_MODELS]
broken.py
"""


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(COMMENTED)
    return path


def whitelisted(path):
    return [(e.name, e.versions) for e in read_queue_config(str(path)).whitelist]


def blacklisted(path):
    return [(e.name, e.versions) for e in read_queue_config(str(path)).blacklist]


def no_temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def test_whitelist_appends_after_the_last_entry_and_keeps_every_other_byte(cfg):
    message = config_edit.whitelist(str(cfg), "gan")
    assert message.endswith("models.config: whitelisted gan.py (after resnet.py)")
    assert cfg.read_text() == COMMENTED.replace("resnet.py\n", "resnet.py\ngan.py\n")
    assert whitelisted(cfg) == [("mlp.py", None), ("cnn.py", ["small", "large", "huge"]), ("resnet.py", None),
                                ("gan.py", None)]
    assert no_temp_files(cfg.parent)


def test_whitelist_order_is_the_run_order(project):
    for name in ("a.py", "b.py", "c.py"):
        project.script(name, "")
    path = str(project.write("models.config", "[MLP]\n[WHITELISTED_MODELS]\n"))
    for name in ("c.py", "a.py", "b.py"):
        config_edit.whitelist(path, name)
    selected, _ = resolve_scripts(Project(str(project.root), str(project.models)), read_queue_config(path))
    assert [os.path.basename(s.path) for s in selected] == ["c.py", "a.py", "b.py"]


def test_whitelist_with_versions_then_changing_them_in_place(cfg):
    assert "whitelisted gan.py = a, b (after resnet.py)" in config_edit.whitelist(str(cfg), "gan.py", ["a", "b", "a"])
    assert whitelisted(cfg)[-1] == ("gan.py", ["a", "b"])
    message = config_edit.whitelist(str(cfg), "cnn.py", ["large"])
    assert message.endswith("models.config: whitelisted cnn.py = large")
    assert cfg.read_text() == COMMENTED.replace("cnn.py = small, large\n    huge  ; continued\n", "cnn.py = large\n") \
        .replace("resnet.py\n", "resnet.py\ngan.py = a, b\n")
    assert [n for n, _ in whitelisted(cfg)] == ["mlp.py", "cnn.py", "resnet.py", "gan.py"]


def test_all_versions_again_keeps_the_inline_comment_on_its_own_line(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("[WHITELISTED_MODELS]\ncnn.py = small  # the fast one\n")
    config_edit.whitelist(str(path), "cnn.py", ["large"])
    assert path.read_text() == "[WHITELISTED_MODELS]\ncnn.py = large  # the fast one\n"
    assert config_edit.whitelist(str(path), "cnn.py").endswith("whitelisted cnn.py (all its versions)")
    assert path.read_text() == "[WHITELISTED_MODELS]\n# the fast one\ncnn.py\n"
    assert whitelisted(path) == [("cnn.py", None)]


def test_whitelisting_a_blacklisted_script_takes_it_off_the_blacklist(cfg):
    message = config_edit.whitelist(str(cfg), "broken")
    assert message.endswith("whitelisted broken.py (after resnet.py); removed it from the blacklist")
    assert blacklisted(cfg) == []
    assert cfg.read_text().endswith("# things that do not work yet\n[BLACKLISTED_MODELS]\n")


def test_blacklist_moves_a_script_out_of_the_whitelist_continuation_lines_and_all(cfg):
    message = config_edit.blacklist(str(cfg), "cnn.py")
    assert message.endswith("models.config: blacklisted cnn.py; removed it from the whitelist")
    assert cfg.read_text() == COMMENTED.replace("cnn.py = small, large\n    huge  ; continued\n", "") \
        .replace("broken.py\n", "broken.py\ncnn.py\n")
    assert whitelisted(cfg) == [("mlp.py", None), ("resnet.py", None)]
    assert blacklisted(cfg) == [("broken.py", None), ("cnn.py", None)]


def test_removing_a_script_removes_its_duplicates_too(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("[WHITELISTED_MODELS]\na.py\nb\na = v1\n")
    assert read_queue_config(str(path)).warnings  # the second a.py is ignored until the first goes
    assert config_edit.unlist(str(path), "a").endswith("removed a.py from the whitelist")
    assert path.read_text() == "[WHITELISTED_MODELS]\nb\n"


def test_unlist_takes_a_script_out_of_both_lists(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("[WHITELISTED_MODELS]\na.py\n[BLACKLISTED_MODELS]\na.py = v2\nb.py\n")
    assert config_edit.unlist(str(path), "a.py").endswith("removed a.py from the whitelist and the blacklist")
    assert path.read_text() == "[WHITELISTED_MODELS]\n[BLACKLISTED_MODELS]\nb.py\n"


def test_reorder_moves_the_comments_directly_above_an_entry_with_it(cfg):
    """Entries change places; the blank lines between places stay where they were."""
    message = config_edit.reorder(str(cfg), ["resnet", "mlp.py"])
    assert message.endswith("models.config: the whitelist runs resnet.py, mlp.py, cnn.py")
    assert [n for n, _ in whitelisted(cfg)] == ["resnet.py", "mlp.py", "cnn.py"]
    assert whitelisted(cfg)[2] == ("cnn.py", ["small", "large", "huge"])
    assert cfg.read_text() == COMMENTED.replace(
        "# quick check first\nmlp.py\ncnn.py = small, large\n    huge  ; continued\n\nresnet.py\n",
        "resnet.py\n# quick check first\nmlp.py\n\ncnn.py = small, large\n    huge  ; continued\n")


def test_reorder_unindents_a_first_entry_it_moves_down(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("[WHITELISTED_MODELS]\n  a.py\nb.py\n")  # read_ini: an indented first entry is an entry
    config_edit.reorder(str(path), ["b.py"])
    assert path.read_text() == "[WHITELISTED_MODELS]\nb.py\na.py\n"
    assert whitelisted(path) == [("b.py", None), ("a.py", None)]


def test_reorder_refuses_names_that_are_not_whitelisted_and_says_which_are(cfg):
    with pytest.raises(UsageError, match=r"models.config: gan.py not whitelisted \(whitelisted: mlp.py, cnn.py, "
                                         r"resnet.py\); whitelist it first"):
        config_edit.reorder(str(cfg), ["resnet.py", "gan"])
    with pytest.raises(UsageError, match="mlp.py named more than once"):
        config_edit.reorder(str(cfg), ["mlp", "mlp.py"])
    assert cfg.read_text() == COMMENTED


def test_set_use_blacklist_changes_the_value_alone(cfg):
    assert config_edit.set_use_blacklist(str(cfg), True).endswith("use_blacklist = True (every script but the "
                                                                  "blacklist runs)")
    assert cfg.read_text() == COMMENTED.replace("use_blacklist = False   ;", "use_blacklist = True   ;")
    assert read_queue_config(str(cfg)).use_blacklist is True


def test_set_use_blacklist_adds_the_key_or_the_section(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("[MLP]\ntimeout = 60\n\n[WHITELISTED_MODELS]\na.py\n")
    config_edit.set_use_blacklist(str(path), True)
    assert path.read_text() == "[MLP]\ntimeout = 60\nuse_blacklist = True\n\n[WHITELISTED_MODELS]\na.py\n"
    path.write_text("[WHITELISTED_MODELS]\na.py\n")
    config_edit.set_use_blacklist(str(path), True)
    assert path.read_text() == "[WHITELISTED_MODELS]\na.py\n\n[MLP]\nuse_blacklist = True\n"
    assert read_queue_config(str(path)).use_blacklist is True


def test_a_change_that_changes_nothing_does_not_write(cfg):
    before = os.stat(cfg)
    for message in (config_edit.whitelist(str(cfg), "mlp"), config_edit.whitelist(str(cfg), "cnn", ["small", "large", "huge"]),
                    config_edit.blacklist(str(cfg), "broken.py"), config_edit.unlist(str(cfg), "gan.py"),
                    config_edit.reorder(str(cfg), ["mlp.py", "cnn.py"]), config_edit.set_use_blacklist(str(cfg), False)):
        assert "nothing changed" in message
    after = os.stat(cfg)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_missing_file_is_created_with_the_standard_sections(tmp_path):
    path = tmp_path / "models.config"
    config_edit.whitelist(str(path), "a.py")
    assert path.read_text() == config_edit.NEW_FILE.replace("[WHITELISTED_MODELS]\n", "[WHITELISTED_MODELS]\na.py\n")
    assert path.read_text().startswith("# The queue.")
    config = read_queue_config(str(path))
    assert (config.use_blacklist, whitelisted(path), config.warnings) == (False, [("a.py", None)], [])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_umask()


def test_missing_sections_are_added_at_the_end(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("# just a comment\n[MLP]\nuse_blacklist = True")  # and no newline at the end
    config_edit.blacklist(str(path), "a")
    assert path.read_text() == "# just a comment\n[MLP]\nuse_blacklist = True\n\n[BLACKLISTED_MODELS]\na.py"
    config_edit.whitelist(str(path), "b")
    assert path.read_text().endswith("a.py\n\n[WHITELISTED_MODELS]\nb.py")
    assert (whitelisted(path), blacklisted(path)) == ([("b.py", None)], [("a.py", None)])


def test_the_first_entry_of_an_empty_section_goes_below_its_comments(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("[WHITELISTED_MODELS]\n# one script a line, in run order\n\n[BLACKLISTED_MODELS]\n")
    assert config_edit.whitelist(str(path), "a").endswith("whitelisted a.py (first in the queue)")
    assert path.read_text() == "[WHITELISTED_MODELS]\n# one script a line, in run order\na.py\n\n[BLACKLISTED_MODELS]\n"


@pytest.mark.parametrize("bad", ["", ".py", "../x.py", "models/x.py", "a\\b.py", "a\nb.py", "a = v1", "[MLP]",
                                 "a#b.py", "a;b.py", "a:b.py", " a.py", "a\tb.py"])
def test_names_that_are_not_plain_file_names_are_refused(cfg, bad):
    with pytest.raises(UsageError, match=r"models.config: .* is not a script file name; give a "):
        config_edit.whitelist(str(cfg), bad)
    with pytest.raises(UsageError, match="is not a script file name"):
        config_edit.blacklist(str(cfg), bad)
    assert cfg.read_text() == COMMENTED


@pytest.mark.parametrize("bad", [[], ["a,b"], ["x # y"], [" a"], [""]])
def test_bad_versions_are_refused(cfg, bad):
    with pytest.raises(UsageError, match="models.config: .*(no versions given for|is not a version name of) gan.py"):
        config_edit.whitelist(str(cfg), "gan", bad)
    assert cfg.read_text() == COMMENTED


def test_a_broken_config_is_not_edited_and_its_line_is_named(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("[MLP]\nuse_blacklist = maybe\n")
    with pytest.raises(ConfigError, match=r"models.config:2: use_blacklist = 'maybe' is not a boolean"):
        config_edit.whitelist(str(path), "a.py")
    assert path.read_text() == "[MLP]\nuse_blacklist = maybe\n"


def test_crlf_line_endings_a_bom_and_the_file_mode_are_kept(tmp_path):
    path = tmp_path / "models.config"
    original = "\ufeff# queue\r\n[MLP]\r\nuse_blacklist = False\r\n\r\n[WHITELISTED_MODELS]\r\na.py\r\n"
    path.write_bytes(original.encode())
    os.chmod(path, 0o640)
    config_edit.whitelist(str(path), "b.py")
    config_edit.blacklist(str(path), "c.py")
    config_edit.set_use_blacklist(str(path), True)
    assert path.read_bytes() == original.replace("False", "True").encode() + b"b.py\r\n\r\n[BLACKLISTED_MODELS]\r\nc.py\r\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert no_temp_files(tmp_path)


def test_a_symlinked_config_is_edited_where_it_points(tmp_path):
    (tmp_path / "shared").mkdir()
    target = tmp_path / "shared" / "queue.config"
    target.write_text("[WHITELISTED_MODELS]\na.py\n")
    link = tmp_path / "models.config"
    link.symlink_to(target)
    config_edit.whitelist(str(link), "b.py")
    assert link.is_symlink() and target.read_text() == "[WHITELISTED_MODELS]\na.py\nb.py\n"


def test_a_failed_save_leaves_the_file_as_it_was_and_no_temp_file(cfg, monkeypatch):
    def disk_full(fd):  # a real full disk cannot be arranged here
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(config_edit.os, "fsync", disk_full)
    with pytest.raises(StorageError, match="models.config: cannot save the queue: no space left on the device; "
                                           "free some space and run again \\(the file is unchanged\\)"):
        config_edit.whitelist(str(cfg), "gan.py")
    assert cfg.read_text() == COMMENTED
    assert no_temp_files(cfg.parent)


def test_edits_at_the_same_moment_all_land_and_a_reader_never_sees_a_torn_file(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(COMMENTED)
    names = [f"m{i}.py" for i in range(20)]
    done = threading.Event()
    seen, errors = [], []

    def read_all_the_time():
        while not done.is_set():
            try:
                seen.append(len(read_queue_config(str(path)).whitelist))
            except ConfigError as exc:  # half a file
                errors.append(exc)

    reader = threading.Thread(target=read_all_the_time)
    writers = [threading.Thread(target=config_edit.whitelist, args=(str(path), n)) for n in names]
    reader.start()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    reader.join()
    assert sorted(n for n, _ in whitelisted(path)[3:]) == sorted(names)
    assert errors == [] and seen and min(seen) >= 3 and seen == sorted(seen)
    assert no_temp_files(tmp_path)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
