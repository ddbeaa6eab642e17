"""The OpenAI-compatible backend against a small chat server on 127.0.0.1 started by the test."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from msclip.captioning.backends import GenerationError, GenerationSettings, OpenAIBackend
from msclip.captioning.chips import geotiff_sources
from msclip.captioning.overture import OvertureIndex
from msclip.captioning.pipeline import caption
from msclip.captioning.prompts import conversation, prompt_set

QA = "Q1: What covers the left? A1: A dense forest. Q2: Any water? A2: A small lake. Q3: Fields? A3: Yes."
CAPTION = "Caption: A dense forest beside farmland and a small lake. A dense forest beside farmland and a small lake."


class ChatServer:
    """Replies from a script ('503', 'bad-json', 'no-choices', 'slow', '400'), then normal chat completions."""

    def __init__(self, script=(), delay: float = 0.0):
        self.script = list(script)
        self.delay = delay
        self.requests: list[dict] = []
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    action = server.script.pop(0) if server.script else "ok"
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                time.sleep(server.delay + (1.0 if action == "slow" else 0))
                with server.lock:  # done before the reply: a client that got it may send the next at once
                    server.in_flight -= 1
                server.reply(self, action, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reply(self, handler, action: str, body: dict) -> None:
        status, payload = 200, None
        if action in {"503", "400"}:
            status, payload = int(action), b'{"error": "busy"}'
        elif action == "bad-json":
            payload = b"<html>gateway</html>"
        elif action == "no-choices":
            payload = b'{"choices": []}'
        else:
            text = CAPTION if any(m["role"] == "assistant" for m in body["messages"]) else QA
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (time-out test)
            pass

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory():
    servers = []

    def make(script=(), delay=0.0):
        servers.append(ChatServer(script, delay))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _ask(backend, n=1):
    image = Image.new("RGB", (8, 8), "green")
    tags = type("T", (), {"tags": ["forest"], "names": [], "classes": ["forest"]})()
    return backend.generate([conversation(prompt_set(), tags)] * n, [image] * n)


def test_retries_server_errors_and_malformed_replies(server_factory):
    server = server_factory(["503", "bad-json", "no-choices"])
    backend = OpenAIBackend(server.url, "tiny", retries=3, backoff=0.01)
    assert _ask(backend) == [QA]
    assert len(server.requests) == 4
    sent = server.requests[-1]
    assert sent["model"] == "tiny" and sent["max_tokens"] == 300
    image_part = sent["messages"][1]["content"][0]
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert isinstance(sent["messages"][0]["content"], str)  # system prompt as plain text


def test_gives_up_after_the_retries(server_factory):
    server = server_factory(["503", "bad-json", "503"])
    [result] = _ask(OpenAIBackend(server.url, retries=2, backoff=0.01))
    assert isinstance(result, GenerationError) and "3 attempts" in str(result) and "HTTP 503" in str(result)


def test_client_errors_are_not_retried(server_factory):
    server = server_factory(["400"])
    [result] = _ask(OpenAIBackend(server.url, retries=3, backoff=0.01))
    assert isinstance(result, GenerationError) and "HTTP 400" in str(result)
    assert len(server.requests) == 1


def test_time_outs_are_retried(server_factory):
    server = server_factory(["slow"])
    assert _ask(OpenAIBackend(server.url, retries=1, timeout=0.3, backoff=0.01)) == [QA]
    server = server_factory(["slow", "slow"])
    [result] = _ask(OpenAIBackend(server.url, retries=1, timeout=0.3, backoff=0.01))
    assert isinstance(result, GenerationError) and "timed out" in str(result)


def test_concurrency_is_limited(server_factory):
    server = server_factory(delay=0.1)
    assert _ask(OpenAIBackend(server.url, concurrency=2), n=6) == [QA] * 6
    assert server.peak == 2


def test_pipeline_over_http_records_quality(server_factory, tmp_path, chip_paths, overture_extract):
    root, expected = overture_extract
    server = server_factory(["503"])
    backend = OpenAIBackend(server.url, "llava-next", backoff=0.01, settings=GenerationSettings(64, 0.2))
    sources = geotiff_sources([str(chip_paths[0])], view_size=32)
    result = caption(sources, OvertureIndex.from_parquet([root]), backend, tmp_path, progress=False)
    row = result.table.iloc[0]
    assert row["caption"] == CAPTION.removeprefix("Caption: ")
    assert row["question_2"] == "Any water? A small lake."
    assert list(row["tags_mentioned"]) == ["forest", "farmland"]
    assert row["tag_coverage"] == pytest.approx(2 / len(expected[chip_paths[0].name]["tags"]))
    assert list(row["absent_classes"]) == ["lake"] and row["flagged"]
    assert row["repeated_sentences"] == 1
    assert json.loads(row["generation"]) == {
        "backend": "OpenAIBackend", "max_new_tokens": 64, "temperature": 0.2, "top_p": 1.0,
    }  # fmt: skip
    assert result.summary["flagged_absent_classes"] == 1.0
