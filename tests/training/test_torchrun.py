"""``msclip train`` under a real ``torchrun`` with two CPU processes (gloo), as a scheduler launches it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msclip

#: What torchrun runs in each process: the ``msclip`` console script, whatever environment it is in.
ENTRY = "import sys; from msclip.cli import main; sys.exit(main())"


def test_every_rank_of_a_finished_run_exits_0_quietly_and_only_rank_0_exports(pairs_table, tmp_path):
    script = tmp_path / "msclip_entry.py"
    script.write_text(ENTRY + "\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(msclip.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "default",  # show every warning once per place, as a user sees them
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += [
        str(script),
        "train",
        "--model",
        "msclip-tiny",
        "--random-init",
        "true",
        "--pretrained",
        "none",
    ]
    command += ["--data", pairs_table, "--batch-size", "4", "--steps", "2", "--device", "cpu"]
    command += ["--output", str(tmp_path / "run")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "msclip: error" not in done.stderr
    assert done.stderr.count("trained 2 steps") == 1  # rank 0 reports, rank 1 stays quiet
    assert "FutureWarning" not in done.stderr  # open_clip's all_gather deprecation, once per rank and step
    assert {"model.pt", "model.json", "model.safetensors"} <= {p.name for p in (tmp_path / "run").iterdir()}
