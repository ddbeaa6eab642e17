"""msclip caption from the command line: tags only, the tiny VLM from a folder, resume, user errors."""

from __future__ import annotations

import json

import pandas as pd

from msclip.captioning.pipeline import write_part
from msclip.cli import main


def test_tags_only_then_captions_resume_into_another_folder(
    tmp_path, chip_paths, overture_extract, tiny_vlm, capsys
):
    root, expected = overture_extract
    inputs = [str(p) for p in chip_paths]
    tags_dir = tmp_path / "tags"
    assert main(["caption", *inputs, "--overture", str(root), "--tags-only", "--output", str(tags_dir)]) == 0
    table = pd.read_parquet(tags_dir).set_index("image")
    assert list(table.loc[str(chip_paths[1]), "names"]) == expected[chip_paths[1].name]["names"]

    args = ["caption", *inputs, "--overture", str(root), "--output", str(tmp_path / "captions")]
    args += ["--vlm", str(tiny_vlm), "--device", "cpu", "--max-new-tokens", "4", "--view-size", "64"]
    assert main([*args, "--batch-size", "5"]) == 0
    assert "captions: 5" in capsys.readouterr().out
    assert main(args) == 0  # nothing left to do: the run resumes to completion at once
    assert len(pd.read_parquet(tmp_path / "captions")) == 5
    capsys.readouterr()
    assert main(["caption-report", str(tmp_path / "captions")]) == 0
    assert json.loads(capsys.readouterr().out)["captions"] == 5
    assert json.loads((tmp_path / "captions" / "_summary.json").read_text())["captions"] == 5
    assert main(["caption-report", str(tags_dir)]) == 0
    assert json.loads(capsys.readouterr().out) == {"captions": 0, "chips": 5}
    assert main(["caption-report", str(tags_dir / "missing")]) == 1


def test_user_errors_are_one_line(tmp_path, chip_paths, overture_extract, capsys):
    root, _ = overture_extract
    base = ["caption", str(chip_paths[0]), "--output", str(tmp_path)]
    assert main([*base, "--overture", str(root), "--shard", "2/2"]) == 1
    assert main([*base, "--overture-release", "2024-03-12-alpha.0"]) == 1
    assert main([*base, "--overture", str(root), "--prompts", "v9"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("msclip: error:") for line in errors)


def test_a_folder_holds_tags_or_captions_and_the_other_kind_is_refused(
    tmp_path, chip_paths, overture_extract, capsys
):
    """A resume keys on what is in the folder, so captions never go where tags are, nor tags where captions are."""
    root, _ = overture_extract
    base = ["caption", str(chip_paths[0]), "--overture", str(root)]
    tags_dir = tmp_path / "tags"
    assert main([*base, "--tags-only", "--output", str(tags_dir)]) == 0
    capsys.readouterr()
    # refused before the vision-language model loads (this one does not even exist)
    assert main([*base, "--vlm", str(tmp_path / "no-such-vlm"), "--output", str(tags_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds tags only" in err[0], err

    captions_dir = tmp_path / "captions"
    write_part(captions_dir, [{"image": str(chip_paths[0]), "caption": "a forest"}], (0, 1))
    assert main([*base, "--tags-only", "--output", str(captions_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds captions" in err[0], err
