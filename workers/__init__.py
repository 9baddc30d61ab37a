"""Stage 1 of vidpipe: decode videos, sample frames, compute optical flow and CNN features.

Runs as Ray tasks and actors; everything below the Ray wiring is plain Python
that takes a uri or arrays and gives arrays, so it is tested without Ray.
"""
