"""Training: the trainer loop, metrics, temperature scaling and distributed set-up."""
