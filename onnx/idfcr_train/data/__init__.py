"""Training data: image pairs from `../shared/data` split by scene block
(`pairs`: RICE layout, colour alignment of labels, random palettes),
Sentinel-2 group pairs (`s2`), synthetic clouds (`synth_clouds`). Arrays in
model units out; nothing here trains or writes."""
