"""Training: the trainer loop, metrics, calibration and distributed set-up."""
