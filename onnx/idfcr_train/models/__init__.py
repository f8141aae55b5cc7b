"""The PyTorch networks: Pixel-CR (`pixel_cr`), the RGB cloud detector
(`detector`), the calibrated blend probability wrapped around them for export
(`probability`), and IND (`ind`: autoencoder, UNet and ControlNet, schedule,
INR step). Tensors in, tensors out; no file or data handling here."""
