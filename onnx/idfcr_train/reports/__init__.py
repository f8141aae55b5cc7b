"""Measurements and write-ups: scores on validation blocks (`evaluate`,
`s2_report`), recipe comparisons and ablations, the IND detail chain and
autoencoder ceiling, model cards, and the metrics they share (`metrics`)."""
