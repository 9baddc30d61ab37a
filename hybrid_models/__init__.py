"""Temporal models over frame features: recurrent encoders, attention, fusion, ConvLSTM,
captioning and question answering, and their training. Tensors in, tensors out: no I/O.
"""
