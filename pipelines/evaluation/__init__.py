"""Stage 2 evaluation on Apache Beam: predictions joined to ground truth, merged metrics, one report.

`run_evaluate` is `vidpipe evaluate`; `MetricCombineFn` wraps any mergeable metric of
`pipelines.metrics` as a Beam CombineFn.
"""

from pipelines.evaluation.combiners import (
    BootstrapConfig,
    CaptionFinish,
    DeadLetterCombineFn,
    MetricCombineFn,
    SingleLabelFinish,
    pr_curve,
)
from pipelines.evaluation.pipeline import (
    SYNTHETIC_OBJECTS,
    EvaluateConfig,
    EvaluatePlan,
    build_evaluate,
    plan_evaluate,
    run_evaluate,
)
from pipelines.evaluation.report import assemble_report

__all__ = [
    "SYNTHETIC_OBJECTS",
    "BootstrapConfig",
    "CaptionFinish",
    "DeadLetterCombineFn",
    "EvaluateConfig",
    "EvaluatePlan",
    "MetricCombineFn",
    "SingleLabelFinish",
    "assemble_report",
    "build_evaluate",
    "plan_evaluate",
    "pr_curve",
    "run_evaluate",
]
