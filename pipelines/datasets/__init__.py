"""Datasets: the synthetic video generator, importers of published annotation formats, the video writer."""
