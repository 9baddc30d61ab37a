"""`vidpipe train` and `vidpipe ablate`: feature store + manifest in, trained model folders out."""
