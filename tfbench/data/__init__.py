"""Datasets, samples, the synthetic talking-face generator and the face pipeline.

Training (models) and scoring (metrics) both stand on this layer; it imports only the foundation modules.
"""

from tfbench.data.datasets import DATASETS, Dataset, open_dataset
from tfbench.data.loading import DatasetReport, check_dataset, load_samples
from tfbench.data.sample import PROTOCOLS, Protocol, Sample
from tfbench.data.splits import DatasetError, Shard, parse_shard

__all__ = [
    "DATASETS",
    "PROTOCOLS",
    "Dataset",
    "DatasetError",
    "DatasetReport",
    "Protocol",
    "Sample",
    "Shard",
    "check_dataset",
    "load_samples",
    "open_dataset",
    "parse_shard",
]
