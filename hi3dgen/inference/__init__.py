"""Trained models at work: loading checkpoints, predict-normal, image -> mesh generation."""
