"""Manifests, WebDataset shards and their readers."""
