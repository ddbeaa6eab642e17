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


def test_an_unusable_validation_chip_is_named_and_left_out_not_replaced(tiny_config, pairs_table, tmp_path):
    """Replacing it (as training does) would count another chip's pairs twice in the recall."""
    import pandas as pd

    from msclip.training import Trainer

    broken = tmp_path / "broken.tif"
    broken.write_text("not a raster")
    table = pd.read_csv(pairs_table)
    val = tmp_path / "val.csv"
    pd.concat([table, pd.DataFrame([{"image": str(broken), "caption": "a field"}])]).to_csv(val, index=False)
    trainer = Trainer(tiny_config(steps=1, val_data=str(val)), progress=False)
    seen = []
    original = trainer.model.encode_image

    def counting(images):
        seen.append(len(images))
        return original(images)

    trainer.model.encode_image = counting
    metrics = trainer.validate()
    assert sum(seen) == table["image"].nunique()  # every good chip once, the broken one left out
    assert metrics and any("broken.tif" in s for s in trainer.skipped)
