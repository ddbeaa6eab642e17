"""Captioning pipeline: Overture Maps tags + a vision-language model -> captions for Sentinel-2 chips.

```python
from msclip.captioning import OvertureIndex, TransformersBackend, caption, chip_sources

index = OvertureIndex.from_parquet(["overture-extract/"])
result = caption(chip_sources(["chips/"]), index, TransformersBackend.from_pretrained(), "captions/")
```
"""

from msclip.captioning.backends import GenerationSettings, OpenAIBackend, TransformersBackend
from msclip.captioning.chips import chip_sources
from msclip.captioning.overture import OvertureIndex
from msclip.captioning.pipeline import caption, read_captions
from msclip.captioning.prompts import prompt_set

__all__ = [
    "GenerationSettings",
    "OpenAIBackend",
    "OvertureIndex",
    "TransformersBackend",
    "caption",
    "chip_sources",
    "prompt_set",
    "read_captions",
]
