"""Vision-language model backends: Hugging Face transformers (batched, GPU) and OpenAI-compatible HTTP servers.

Both take chat conversations in Hugging Face's content-part format (``{"type": "image"}`` marks the picture)
with one PIL image per conversation, and return one text per conversation, or the exception that prevented
it, so one failed request costs one chip, not the batch.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from PIL import Image

from msclip.errors import MSClipError

log = logging.getLogger(__name__)

#: The VLM the paper captioned SSL4EO-S12 with (Hugging Face transformers port).
DEFAULT_VLM = "llava-hf/llama3-llava-next-8b-hf"
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class GenerationError(Exception):
    """A conversation the backend could not answer (after its retries)."""


@dataclass(frozen=True)
class GenerationSettings:
    """Recorded with every caption. ``temperature`` 0 means greedy decoding."""

    max_new_tokens: int = 300
    temperature: float = 0.0
    top_p: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)


class Backend(Protocol):
    model_name: str
    settings: GenerationSettings

    def generate(
        self, conversations: list[list[dict]], images: list[Image.Image]
    ) -> list[str | Exception]: ...


class TransformersBackend:
    """Any image-text-to-text model of transformers (LLaVA-NeXT family and others), a batch per ``generate``."""

    def __init__(
        self, model, processor, model_name: str, settings: GenerationSettings = GenerationSettings()
    ):
        self.model = model.eval()
        self.processor = processor
        self.model_name = model_name
        self.settings = settings
        processor.tokenizer.padding_side = "left"  # batched generation continues every row at the same end

    @classmethod
    def from_pretrained(
        cls,
        model_id: str = DEFAULT_VLM,
        device: str | None = None,
        dtype: str = "auto",
        revision: str | None = None,
        settings: GenerationSettings = GenerationSettings(),
    ) -> TransformersBackend:
        """Load a Hugging Face model id or local folder; bf16 on GPU, fp32 on CPU unless ``dtype`` says."""
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        try:
            processor = AutoProcessor.from_pretrained(model_id, revision=revision)
            loaded: Any = AutoModelForImageTextToText.from_pretrained(
                model_id, revision=revision, dtype=getattr(torch, dtype)
            )
            model = loaded.to(device)
        except OSError as exc:
            raise MSClipError(
                f"cannot load the VLM {model_id!r} ({exc.__class__.__name__}); offline, download it first and "
                "pass its folder with --vlm, or use --server with an OpenAI-compatible endpoint"
            ) from exc
        return cls(model, processor, model_id, settings)

    def generate(self, conversations: list[list[dict]], images: list[Image.Image]) -> list[str | Exception]:
        import torch

        texts = [self.processor.apply_chat_template(c, add_generation_prompt=True) for c in conversations]
        inputs = self.processor(images=images, text=texts, padding=True, return_tensors="pt").to(
            self.model.device
        )
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        sampling = self.settings.temperature > 0
        extra = {"temperature": self.settings.temperature, "top_p": self.settings.top_p} if sampling else {}
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.settings.max_new_tokens,
                do_sample=sampling,
                pad_token_id=self.processor.tokenizer.pad_token_id,
                **extra,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]


class OpenAIBackend:
    """A ``/v1/chat/completions`` server (vLLM, TGI, llama.cpp, ...): ``concurrency`` requests in flight,
    each retried ``retries`` times with exponential back-off on time-outs, 429/5xx and malformed replies."""

    def __init__(
        self,
        base_url: str,
        model_name: str = DEFAULT_VLM,
        api_key: str | None = None,
        concurrency: int = 8,
        retries: int = 3,
        timeout: float = 120.0,
        backoff: float = 1.0,
        settings: GenerationSettings = GenerationSettings(),
    ):
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self.model_name = model_name
        self.concurrency = concurrency
        self.retries = retries
        self.backoff = backoff
        self.settings = settings

    def generate(self, conversations: list[list[dict]], images: list[Image.Image]) -> list[str | Exception]:
        urls = [_data_url(image) for image in images]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._complete, conversations, urls))

    def _complete(self, conversation: list[dict], image_url: str) -> str | Exception:
        import httpx

        payload = {
            "model": self.model_name,
            "messages": _openai_messages(conversation, image_url),
            "max_tokens": self.settings.max_new_tokens,
            "temperature": self.settings.temperature,
            "top_p": self.settings.top_p,
        }
        problem = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self.client.post("/chat/completions", json=payload)
            except httpx.TimeoutException:
                problem = "timed out"
                continue
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in RETRY_STATUS:
                problem = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                return GenerationError(f"HTTP {response.status_code}: {response.text[:200]}")
            try:
                return _reply_text(response.json())
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                problem = f"malformed reply ({type(exc).__name__}: {exc})"
            log.debug("attempt %d failed: %s", attempt + 1, problem)
        return GenerationError(f"no reply after {self.retries + 1} attempts: {problem}")


def _reply_text(body) -> str:
    content = body["choices"][0]["message"]["content"]
    if not isinstance(content, str):
        raise TypeError(f"content is {type(content).__name__}, not text")
    return content.strip()


def _openai_messages(conversation: list[dict], image_url: str) -> list[dict]:
    """Content parts for the user turns (the image as a data URL); plain strings for the other roles."""
    messages = []
    for message in conversation:
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image_url}} if part["type"] == "image" else part
            for part in message["content"]
        ]
        content = (
            parts if message["role"] == "user" else " ".join(p["text"] for p in parts if p["type"] == "text")
        )
        messages.append({"role": message["role"], "content": content})
    return messages


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
