"""Pictures of an image for the page: true colour (B04 B03 B02) and false colour (B08 B04 B03, vegetation red).

Both go through :func:`msclip.data.prepare` (bands by name, offset removed, gaps filled) and the same 8-bit
scaling an RGB model sees, so the preview shows what the model is given.
"""

from __future__ import annotations

import base64
import io

import numpy as np

from msclip.bands import RGB
from msclip.data import InputOptions, prepare, rgb_composite
from msclip.errors import MSClipError
from msclip.io import Raster

#: Near infrared, red, green: the classic colour-infrared composite.
FALSE_COLOUR = ("B08", "B04", "B03")
PREVIEW_SIZE = 256


def preview_png(raster: Raster, bands: tuple[str, ...], options: InputOptions) -> bytes | None:
    """PNG of the three ``bands`` as red, green, blue; None when the image lacks one of them."""
    from PIL import Image

    try:
        array, _ = prepare(raster, bands, options)
    except MSClipError:
        return None
    if array.dtype != np.uint8:
        array = rgb_composite(array)
    image = Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0)))
    image.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(png: bytes | None) -> str | None:
    """Inline the picture in the JSON answer (no second request, nothing left on the server)."""
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def previews(raster: Raster, options: InputOptions) -> dict[str, str | None]:
    return {
        "rgb": data_url(preview_png(raster, RGB, options)),
        "false_colour": data_url(preview_png(raster, FALSE_COLOUR, options)),
    }
