"""Machine-derived choices: what --precision auto means, and reading ahead in a thread."""

import threading

import pandas as pd
import pytest
import torch

from msclip import runtime
from msclip.cli import main
from msclip.models import load_model
from tests.conftest import L2A_CHIPS


@pytest.mark.parametrize(
    ("flags", "backend", "expected"),
    [
        ({"avx512f", "avx512_bf16"}, "torch", "bf16"),
        ({"amx_bf16", "amx_tile"}, "torch", "bf16"),
        ({"avx512f", "avx2"}, "torch", "fp32"),  # bf16 emulated there: slower than fp32
        ({"avx512_bf16"}, "onnx", "fp32"),  # the ONNX backend runs the exact fp32 tower
        (set(), "torch", "fp32"),  # no /proc/cpuinfo (macOS, Windows)
    ],
)
def test_auto_precision_on_the_cpu_follows_its_flags(monkeypatch, flags, backend, expected):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags))
    assert runtime.resolve_precision("auto", "cpu", backend) == expected


def test_explicit_precision_is_kept_and_other_devices_stay_exact(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert runtime.resolve_precision("fp32", "cpu") == "fp32"
    assert runtime.resolve_precision("auto", "mps") == "fp32"


def test_auto_model_names_the_precision_it_runs_in(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    model = load_model("msclip-tiny", device="cpu", precision="auto")
    assert model.precision == "bf16" and model.clip.visual.conv1.weight.dtype == torch.bfloat16
    assert next(p for n, p in model.clip.named_parameters() if "token_embedding" in n).dtype == torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset())
    assert load_model("msclip-tiny", device="cpu", precision="auto").precision == "fp32"


def test_auto_bf16_agrees_with_fp32_on_the_real_chips(monkeypatch):
    """Same top class, embeddings nearly equal (tiny model: a loose bound)."""
    from msclip import classify

    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    exact = classify(
        load_model("msclip-tiny", device="cpu"), [L2A_CHIPS], ["forest", "snow"], ["a {c}"]
    ).table
    fast = classify(
        load_model("msclip-tiny", device="cpu", precision="auto"), [L2A_CHIPS], ["forest", "snow"], ["a {c}"]
    ).table
    assert fast["image"].tolist() == exact["image"].tolist()
    assert (fast[["forest", "snow"]] - exact[["forest", "snow"]]).abs().to_numpy().max() < 0.05


def test_cli_reports_the_resolved_precision(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    out = tmp_path / "r.csv"
    args = ["classify", str(L2A_CHIPS), "--classes", "a", "b", "--model", "msclip-tiny", "--device", "cpu"]
    assert main([*args, "--output", str(out)]) == 0
    assert "msclip-tiny on cpu, bf16 (auto)" in capsys.readouterr().err
    assert main([*args, "--output", str(out), "--precision", "fp32"]) == 0
    assert "msclip-tiny on cpu, fp32\n" in capsys.readouterr().err
    assert len(pd.read_csv(out)) == 5


def test_reader_processes_only_with_cores_to_spare(monkeypatch):
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    assert runtime.reader_processes(1000) == 0 and runtime.reader_processes() == 0
    monkeypatch.setattr(runtime, "usable_cores", lambda: 32)
    assert runtime.reader_processes(10) == 0
    assert runtime.reader_processes(1000) == 4 and runtime.reader_processes() == 4


def test_prefetch_keeps_order_and_reads_in_another_thread():
    readers = []

    def items():
        for i in range(10):
            readers.append(threading.current_thread().name)
            yield i

    assert list(runtime.prefetch(items())) == list(range(10))
    assert set(readers) == {"msclip-reader"}


def test_prefetch_raises_the_readers_error_in_the_consumer():
    def items():
        yield 1
        raise ValueError("bad read")

    got = []
    with pytest.raises(ValueError, match="bad read"):
        for item in runtime.prefetch(items()):
            got.append(item)
    assert got == [1]


def test_prefetch_stops_its_thread_when_the_consumer_stops():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    iterator = runtime.prefetch(items(), depth=2)
    assert next(iterator) == 0
    iterator.close()
    assert not any(t.name == "msclip-reader" for t in threading.enumerate())
    assert len(produced) < 10


def test_prefetch_runs_a_generators_clean_up_in_its_own_thread():
    closed_in = []

    def items():
        try:
            yield from range(100)
        finally:
            closed_in.append(threading.current_thread().name)

    iterator = runtime.prefetch(items())
    next(iterator)
    iterator.close()
    assert list(runtime.prefetch(items())) == list(range(100))
    assert closed_in == ["msclip-reader", "msclip-reader"]


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="needs torch on 2 or more threads")
def test_the_reader_thread_computes_on_one_core_and_leaves_the_others_alone():
    cores = torch.get_num_threads()
    seen = []

    def items():
        seen.append(torch.get_num_threads())
        yield 1

    list(runtime.prefetch(items()))
    later = []
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [1] and torch.get_num_threads() == cores and later == [cores]


def test_torch_threads_never_exceed_the_usable_cores(monkeypatch):
    cores = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 1)
    try:
        load_model("msclip-tiny", device="cpu")
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(runtime, "usable_cores", lambda: cores + 8)
        runtime.fit_threads_to_cores()
        assert torch.get_num_threads() == 1  # more cores than threads: torch's own choice stands
    finally:
        torch.set_num_threads(cores)
