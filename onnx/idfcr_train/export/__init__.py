"""Checkpoints -> ONNX graphs with the `idfcr.*` contract the Rust runtime
reads (`pixel_cr`, `ind`; keys checked by `contract` against
`onnx/contract_keys.json`), and the small test fixtures (`fixtures`)."""
