"""Stage 2 (Apache Beam inference and evaluation), reports, datasets, jobs and the command line."""
