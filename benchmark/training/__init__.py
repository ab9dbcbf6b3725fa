"""Training (torch, no Ray, no store): one resolved trial in, long-format metric rows out.
Modules: setup (device, data, method), trainer (the loop and one epoch), evaluation (metric rows),
checkpoint, metrics (group accuracies), input_pipeline (on-device batches), holdout (validation split)."""
