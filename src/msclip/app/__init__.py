"""The web app (``msclip app``): classify uploaded chips and search an index in the browser.

FastAPI serves a JSON API and a small dependency-free page (plain HTML/JS/CSS, no build step, no CDN), so
it runs offline next to the data; :func:`create_app` is the door, ``msclip app`` starts it with uvicorn.
"""

from msclip.app.server import create_app
from msclip.app.uploads import Limits

__all__ = ["Limits", "create_app"]
