"""PyTorch DDP on CPU (gloo): two processes with half the batch each train exactly like one process."""

from __future__ import annotations

import os
import socket

import pandas as pd
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from msclip.training import Trainer, make_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, values: dict) -> None:
    os.environ.update(
        {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size)}
        | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )
    torch.set_num_threads(1)
    try:
        trainer = Trainer(make_config(overrides=values), progress=False)
        trainer.run()
        if rank == 0:
            torch.save(trainer.clip.state_dict(), os.path.join(values["output"], "weights.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one_process(tiny_config, tmp_path):
    single = Trainer(tiny_config(output=str(tmp_path / "single"), steps=2), progress=False)
    single.run()

    # each rank holds 2 of the global 4 and re-encodes them one at a time (GradCache under DDP no_sync);
    # spawned, not forked: a forked child cannot run autograd once the parent has (torch's autograd threads)
    ddp = tiny_config(output=str(tmp_path / "ddp"), steps=2, grad_cache_chunk=1).to_dict()
    mp.start_processes(_worker, args=(2, _free_port(), ddp), nprocs=2, join=True, start_method="spawn")

    losses = pd.read_csv(tmp_path / "ddp" / "train_log.csv")["loss"]
    expected = pd.read_csv(tmp_path / "single" / "train_log.csv")["loss"]
    assert len(losses) == 2
    torch.testing.assert_close(
        torch.tensor(losses.values), torch.tensor(expected.values), rtol=1e-5, atol=1e-6
    )
    weights = torch.load(tmp_path / "ddp" / "weights.pt", weights_only=True)
    for name, tensor in single.clip.state_dict().items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
