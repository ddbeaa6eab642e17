"""Validation during training can include the zero-shot benchmark of ``msclip evaluate``."""

from __future__ import annotations

from tests.conftest import L2A_CHIPS

CLASSES = {"ocean": "282D_485L_3_3", "snow": "609U_541L_3_0", "agriculture": "637U_59R_1_3"}


def test_zeroshot_benchmark_in_validation(tiny_config, tmp_path):
    from msclip.training import Trainer

    root = tmp_path / "chips"
    for name, chip in CLASSES.items():
        (root / name).mkdir(parents=True)
        (root / name / f"{chip}.tif").symlink_to(L2A_CHIPS / f"{chip}.tif")
    trainer = Trainer(tiny_config(steps=1, zeroshot=[f"chips={root}"]), progress=False)
    summary = trainer.run()
    assert 0.0 <= summary["chips/top1_accuracy"] <= 1.0 and 0.0 < summary["chips/map@100"] <= 1.0, summary
