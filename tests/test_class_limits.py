"""Class names and queries have limits: a huge name would hold the model for minutes (CLIP reads 77 tokens)."""

from __future__ import annotations

import pytest

from msclip.cli import main
from msclip.errors import MSClipError
from msclip.text import MAX_CLASS_NAME_CHARS, MAX_CLASSES, class_names


def test_class_names_within_limits_pass():
    names = [f"class {i}" for i in range(MAX_CLASSES)]
    assert class_names(names) == names
    assert class_names(["x" * MAX_CLASS_NAME_CHARS]) == ["x" * MAX_CLASS_NAME_CHARS]


def test_too_many_or_too_long_class_names_are_user_errors(tmp_path):
    with pytest.raises(MSClipError, match=f"too many classes \\({MAX_CLASSES + 1}\\); at most {MAX_CLASSES}"):
        class_names([f"c{i}" for i in range(MAX_CLASSES + 1)])
    with pytest.raises(MSClipError, match=f"is {MAX_CLASS_NAME_CHARS + 1} characters long"):
        class_names(["ocean", "y" * (MAX_CLASS_NAME_CHARS + 1)])
    listed = tmp_path / "classes.txt"
    listed.write_text("ocean\n" + "z" * 5000 + "\n")
    with pytest.raises(MSClipError, match="5,000 characters"):
        class_names([str(listed)])


@pytest.mark.parametrize("command", ["classify", "retrieve"])
def test_the_cli_refuses_them_in_one_line_before_loading_a_model(command, chip_paths, capsys, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("msclip.models.load_model", no_model)
    option = "--classes" if command == "classify" else "--query"
    code = main([command, str(chip_paths[0]), option, "ocean", "w" * 100_000, "--model", "msclip-tiny"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "100,000 characters" in err and "w" * 100 not in err
