"""Average of per-sample scalars returned by a model's ``val_step`` (e.g. the AR's validation
next-token loss and AR-vs-teacher cosine)."""
from typing import List, Sequence

from mmengine.evaluator import BaseMetric

from gear.registry import METRICS


@METRICS.register_module()
class MeanMetric(BaseMetric):
    """Mean over the validation set of every numeric key of each prediction dict.

    Args:
        prefix (str): metric name prefix (default ``val``).
    """
    default_prefix = 'val'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        self.results.extend({k: float(v) for k, v in s.items() if isinstance(v, (int, float))}
                            for s in data_samples)

    def compute_metrics(self, results: List[dict]) -> dict:
        keys = results[0].keys() if results else []
        return {k: sum(r[k] for r in results) / len(results) for k in keys}
