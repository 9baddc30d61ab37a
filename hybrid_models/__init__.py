"""Temporal models over frame features: recurrent encoders, attention, fusion, ConvLSTM,
captioning and question answering, and their training. Tensors in, tensors out: no I/O.
"""

# Action models and checkpoints. `hybrid_models.zoo` (the model dict) and `video3d` are imported
# by their module names: they pull in torchvision, which takes seconds to import.
from hybrid_models.checkpoints import load_checkpoint, save_checkpoint
from hybrid_models.cnn_rnn import CNNRNNClassifier, CNNRNNConfig
from hybrid_models.convlstm import (
    ConvLSTM,
    ConvLSTMCell,
    ConvLSTMClassifier,
    ConvLSTMClassifierConfig,
    ConvLSTMConfig,
    ConvLSTMPredictor,
    next_map_mse,
)
from hybrid_models.fusion import (
    AttentionFusion,
    FusedTemporalClassifier,
    FusedTemporalConfig,
    TwoStreamClassifier,
    TwoStreamConfig,
)
from hybrid_models.segments import TemporalSegmentClassifier, TemporalSegmentConfig
from hybrid_models.temporal_classifier import (
    ClassifierOutput,
    TemporalClassifier,
    TemporalClassifierConfig,
    probabilities,
)

__all__ = [
    "AttentionFusion",
    "CNNRNNClassifier",
    "CNNRNNConfig",
    "ClassifierOutput",
    "ConvLSTM",
    "ConvLSTMCell",
    "ConvLSTMClassifier",
    "ConvLSTMClassifierConfig",
    "ConvLSTMConfig",
    "ConvLSTMPredictor",
    "FusedTemporalClassifier",
    "FusedTemporalConfig",
    "TemporalClassifier",
    "TemporalClassifierConfig",
    "TemporalSegmentClassifier",
    "TemporalSegmentConfig",
    "TwoStreamClassifier",
    "TwoStreamConfig",
    "load_checkpoint",
    "next_map_mse",
    "probabilities",
    "save_checkpoint",
]
