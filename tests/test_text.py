import numpy as np
import pytest
import torch
import torch.nn.functional as F

from msclip.errors import MSClipError
from msclip.text import class_embeddings, class_names, templates


def test_builtin_template_sets():
    assert len(templates("msclip")) == 50
    assert all("{c}" in t for t in templates("msclip"))
    assert len(templates("clip")) == 3
    assert len(templates("rs5m")) == 105


def test_user_template_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a photo of {}\nan image of {c}\n")
    assert templates(str(path)) == ["a photo of {c}", "an image of {c}"]
    path.write_text("no placeholder\n")
    with pytest.raises(MSClipError, match="has no \\{c\\}"):
        templates(str(path))
    with pytest.raises(MSClipError, match="unknown template set"):
        templates("nope")


def test_class_names_from_args_txt_and_yaml(tmp_path):
    assert class_names(["ocean", " snow "]) == ["ocean", "snow"]
    (tmp_path / "c.txt").write_text("forest\nriver\n")
    assert class_names([str(tmp_path / "c.txt")]) == ["forest", "river"]
    (tmp_path / "c.yaml").write_text("classes: [urban area, lake]\n")
    assert class_names([str(tmp_path / "c.yaml")]) == ["urban area", "lake"]
    with pytest.raises(MSClipError, match="given twice"):
        class_names(["a", "a"])


TRIM_PROMPTS = ["a", "a satellite image of a very long river next to a town and fields.", "snow", "a {c} of"]


def _assert_trimmed_text_tower_is_exact(model) -> None:
    with torch.no_grad():
        full = F.normalize(model.clip.encode_text(model.tokenizer(TRIM_PROMPTS)), dim=-1)
    trimmed = model.encode_text(TRIM_PROMPTS, batch_size=2)
    assert (trimmed - full).abs().max() < 1e-5


def test_trimmed_text_tower_is_exact(tiny_model):
    """Cutting the context after the longest prompt changes nothing (causal mask, EOT pooling)."""
    _assert_trimmed_text_tower_is_exact(tiny_model)


def test_trimmed_text_tower_is_exact_for_vit_b_16():
    """The same on the real architecture (12 layers, width 512), with open_clip's own initialisation."""
    from msclip import load_model

    torch.manual_seed(0)
    model = load_model("ViT-B-16", random_init=True, device="cpu", precision="fp32")
    _assert_trimmed_text_tower_is_exact(model)


def test_class_embedding_is_mean_of_normalised_prompts(tiny_model):
    names, prompts = ["ocean", "snow"], ["a satellite image of {c}.", "an aerial image of the {c}."]
    got = class_embeddings(tiny_model, names, prompts, use_cache=False)
    for i, name in enumerate(names):
        per_prompt = tiny_model.encode_text([t.format(c=name) for t in prompts])
        assert torch.allclose(got[i], F.normalize(per_prompt.mean(0), dim=0), atol=1e-6)


def test_class_embeddings_are_cached_per_class(tiny_model, monkeypatch):
    first = class_embeddings(tiny_model, ["ocean", "snow"], templates("clip"))
    seen = []
    original = type(tiny_model).encode_text

    def counting(self, texts, batch_size=256):
        seen.extend(texts)
        return original(self, texts, batch_size)

    monkeypatch.setattr(type(tiny_model), "encode_text", counting)
    again = class_embeddings(tiny_model, ["snow", "ocean", "forest"], templates("clip"))
    assert torch.allclose(again[:2], first.flip(0))
    assert len(seen) == 3 and all("forest" in s for s in seen)  # only the new class was encoded


def test_unreadable_cache_entries_are_recomputed_with_one_warning(tiny_model, tmp_path, monkeypatch):
    """A cache shared with other users holds files this user cannot read, or truncated ones."""
    from msclip import cache

    monkeypatch.setenv("MSCLIP_CACHE", str(tmp_path))
    monkeypatch.setattr(cache, "_warned", set())
    names = ["ocean", "snow"]
    fresh = class_embeddings(tiny_model, names, templates("clip"))
    entries = sorted((tmp_path / "text").rglob("*.npy"))
    assert len(entries) == 2
    for entry in entries:
        entry.write_bytes(b"\x93NUMPY garbage")
    with pytest.warns(UserWarning, match="cannot read cached text embedding") as caught:
        again = class_embeddings(tiny_model, names, templates("clip"))
    assert len(caught) == 1
    assert torch.allclose(again, fresh)
    assert all(np.load(e).shape == (fresh.shape[1],) for e in entries)  # rewritten


def test_unwritable_cache_still_classifies(tiny_model, tmp_path, monkeypatch):
    from msclip import cache

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("MSCLIP_CACHE", str(blocker))
    monkeypatch.setattr(cache, "_warned", set())
    with pytest.warns(UserWarning, match="cannot write the text embedding cache"):
        got = class_embeddings(tiny_model, ["ocean"], templates("clip"))
    assert got.shape[0] == 1


def test_text_fingerprint_follows_text_weights_and_precision():
    """Cached class embeddings are keyed by the text tower's exact bytes and dtype, not by the image tower."""
    from msclip import load_model
    from msclip.text import text_fingerprint

    first, again = load_model("msclip-tiny", device="cpu"), load_model("msclip-tiny", device="cpu")
    assert text_fingerprint(first) == text_fingerprint(again)
    with torch.no_grad():
        again.clip.visual.proj.add_(1.0)
    del again._text_fingerprint
    assert text_fingerprint(again) == text_fingerprint(first)
    with torch.no_grad():
        again.clip.text_projection[0, 0] += 1e-3
    del again._text_fingerprint
    assert text_fingerprint(again) != text_fingerprint(first)
    bf16 = load_model("msclip-tiny", device="cpu", precision="bf16")
    assert text_fingerprint(bf16) != text_fingerprint(first)
