"""Prefect flows over the DVC stages: end-to-end reruns, scheduled dataset refreshes, training."""
