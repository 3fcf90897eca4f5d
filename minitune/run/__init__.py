"""What a long run needs around the training loop: its state and exact resume, checkpoints and
the safetensors format, stop signals, several processes (DDP/FSDP), the device and precision, the
metrics log, the run's record and page, the settings' resolution and provenance, the shipped
files, and the errors a user can fix. `minitune/train.py` calls into these; a learner can read
the loop without them. This file imports nothing, so that `minitune.config` (which reads
`run/paths.py`) stays free of torch."""
