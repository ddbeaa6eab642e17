"""Prompt sets and reply parsing; quality checks on hand-written captions."""

from __future__ import annotations

from msclip.captioning.prompts import clean_caption, parse_pairs, prompt_set
from msclip.captioning.quality import check


def test_prompt_files_override_the_builtin_set(tmp_path):
    custom = tmp_path / "mine.yaml"
    custom.write_text("version: mine-2\nquestions: 'Tags: {tags}'\ncaption: Summarise.\n")
    assert prompt_set(str(custom)).version == "mine-2" and prompt_set(str(custom)).system == ""
    assert parse_pairs("Question 1: Is it green?\nAnswer 1: Yes.\nQuestion 2) Water? Answer 2) No.") == [
        "Is it green? Yes.",
        "Water? No.",
        "",
    ]
    assert parse_pairs("no structure here") == ["no structure here", "", ""]
    assert clean_caption(' Caption: "Fields and a river." ') == "Fields and a river."


def test_quality_checks_on_hand_written_captions():
    vocabulary = {"forest", "lake", "farmland", "airport", "reservoir"}
    result = check(
        "Forests surround a reservoir. Forests surround a reservoir. No lakes",
        ["forest", "reservoir"],
        vocabulary,
    )
    assert result["tags_mentioned"] == ["forest", "reservoir"] and result["tag_coverage"] == 1.0
    assert result["repeated_sentences"] == 1 and result["n_words"] == 10
    assert result["absent_classes"] == ["lake"] and result["flagged"]
    assert check("Green fields.", [], vocabulary) == {
        "n_words": 2, "tags_mentioned": [], "tag_coverage": None, "repeated_sentences": 0,
        "absent_classes": [], "flagged": False,
    }  # fmt: skip
