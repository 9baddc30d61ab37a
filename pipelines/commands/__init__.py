"""Subcommands of `vidpipe`: each maps flags onto a stage's config and calls it."""
