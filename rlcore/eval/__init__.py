"""rlcore.eval: rerunnable pass@k sweeps over capability buckets, in-training evaluation with a
retention alarm, and decontamination of training data against evaluation suites.

    rlcore eval CHECKPOINT... --suite tiny --k 1,2,4 --n 4        # launch/eval.py
    rlcore data decontam train.jsonl --against full               # launch/data.py
"""

from rlcore.eval.decontam import find_contaminated, suite_items
from rlcore.eval.metrics import bootstrap_ci, maj_at_k, pass_at_k
from rlcore.eval.periodic import PeriodicEval, periodic_eval, retention_alarms
from rlcore.eval.suite import SuiteConfig, SuiteError, load_suite

__all__ = [
    "SuiteConfig",
    "PeriodicEval",
    "SuiteError",
    "bootstrap_ci",
    "find_contaminated",
    "load_suite",
    "maj_at_k",
    "pass_at_k",
    "periodic_eval",
    "retention_alarms",
    "suite_items",
]
