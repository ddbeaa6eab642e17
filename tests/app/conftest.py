"""The app around the tiny model, the five real chips as examples, and a small index of them."""

from __future__ import annotations

import pytest

from tests.conftest import L2A_CHIPS

pytest.importorskip("fastapi")


@pytest.fixture(scope="session")
def chip_index(tiny_model, tmp_path_factory):
    """An index of the five example chips embedded by the tiny model (as `msclip embed` + index build)."""
    from msclip import embed
    from msclip.index import build_index, open_index
    from msclip.io import write_table

    folder = tmp_path_factory.mktemp("index")
    write_table(embed(tiny_model, [str(L2A_CHIPS)]).table, folder / "embeddings.parquet")
    return open_index(build_index([str(folder / "embeddings.parquet")], str(folder / "index")))


@pytest.fixture(scope="session")
def app(tiny_model, chip_index, chip_paths):
    from msclip.app import create_app

    return create_app(tiny_model, chip_index, [str(p) for p in chip_paths])


@pytest.fixture(scope="session")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client
