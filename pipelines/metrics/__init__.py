"""Evaluation metrics as pure, mergeable statistics: create, add, merge, compute.

Each metric is a frozen config whose methods never change their arguments, so
a Beam CombineFn can wrap it and shards merge in any order to one result.
"""

from pipelines.metrics.base import MergeableMetric, evaluate, merge_disjoint
from pipelines.metrics.bootstrap import bootstrap_ci, paired_bootstrap_ci
from pipelines.metrics.caption_errors import (
    CaptionErrorConfig,
    caption_error_report,
    caption_errors,
    object_lexicon,
)
from pipelines.metrics.captioning import (
    CaptionAccumulator,
    CaptionMetrics,
    CaptionSample,
    caption_scores,
    cider,
    java_problem,
    ptb_tokenize,
    simple_tokenize,
    spice_problem,
)
from pipelines.metrics.classification import (
    LabelledScores,
    MultiLabelClassification,
    MultiLabelScores,
    ScoresAccumulator,
    SingleLabelClassification,
    average_precision,
    class_pair_accuracy,
)
from pipelines.metrics.temporal_order import (
    OrderedPrediction,
    TemporalOrderAccumulator,
    TemporalOrderCheck,
)
from pipelines.metrics.vqa import AnsweredQuestion, VqaAccumulator, VqaAccuracy, normalize_answer

__all__ = [
    "AnsweredQuestion",
    "CaptionAccumulator",
    "CaptionErrorConfig",
    "CaptionMetrics",
    "CaptionSample",
    "LabelledScores",
    "MergeableMetric",
    "MultiLabelClassification",
    "MultiLabelScores",
    "OrderedPrediction",
    "ScoresAccumulator",
    "SingleLabelClassification",
    "TemporalOrderAccumulator",
    "TemporalOrderCheck",
    "VqaAccumulator",
    "VqaAccuracy",
    "average_precision",
    "bootstrap_ci",
    "caption_error_report",
    "caption_errors",
    "caption_scores",
    "cider",
    "class_pair_accuracy",
    "evaluate",
    "java_problem",
    "merge_disjoint",
    "normalize_answer",
    "object_lexicon",
    "paired_bootstrap_ci",
    "ptb_tokenize",
    "simple_tokenize",
    "spice_problem",
]
