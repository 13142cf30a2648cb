"""One training loop for every model: device, precision, schedules, checkpoints, DDP."""
