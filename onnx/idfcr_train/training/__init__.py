"""Trainers, each resumable from a checkpoint under `onnx/checkpoints/`:
`train_pixel_cr`, `train_detector`, `train_gate` (the RGB blend gate),
`train_ind` (autoencoder, UNet, ControlNet), and `calibrate` (the blend
probability's curve, chosen on validation and stored in the Pixel-CR
checkpoint). `run_options` holds the options all trainers share."""
