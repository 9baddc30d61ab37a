"""Benchmarks that `make bench` runs (`python -m benchmarks`): each prints a table and writes JSON.

Numbers from a shared 2-core machine move with its load, so every report says what it ran on.
"""
