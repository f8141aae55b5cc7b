"""Training data: image pairs from `../shared/data` split by scene block
(`pairs`: RICE layout, colour alignment of labels, random palettes),
Sentinel-2 group pairs (`s2`), synthetic clouds (`synth_clouds`). Arrays in
model units out; nothing here trains or writes."""


def load_pairs(data: str, s2_group: str | None, ts_data: str | None, val_blocks: str | None):
    """The pairs of a run and how to split them: (pairs, validation blocks,
    per-band synthetic-cloud brightness or None). RICE layout by default
    (validation blocks 3 and 9); with `s2_group`, the Sentinel-2 group's
    pairs and validation scenes. `val_blocks` overrides the default."""
    import numpy as np

    if s2_group:
        from idfcr_train.data.s2 import DEFAULT_VAL_SCENES, GROUPS, load_s2
        from idfcr_train.data.synth_clouds import S2_CLOUD_BRIGHTNESS

        brightness = np.array([S2_CLOUD_BRIGHTNESS[b] for b in GROUPS[s2_group][0]], np.float32)
        return load_s2(data, ts_data, s2_group), val_blocks or DEFAULT_VAL_SCENES, brightness
    from idfcr_train.data.pairs import load_rice

    return load_rice(data), val_blocks or "3,9", None
