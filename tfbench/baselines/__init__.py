"""Baselines: published third-party generators and reference baselines, registered into `MODELS`.

Importing this package registers every built-in baseline with `tfbench.models.protocol.MODELS`:
`wav2lip` and `wav2lip_gan` (Wav2Lip's published checkpoints and inference convention) and the reference
baselines `gt`, `static`, `shifted` and `reference-copy`, and `command` (any third-party inference script run
per clip from a command template). Third-party models register through the `tfbench.models` entry-point
group instead.
"""

from tfbench.baselines import command as command
from tfbench.baselines import reference as reference
from tfbench.baselines import wav2lip as wav2lip
from tfbench.models import ours as ours

__all__ = ["command", "ours", "reference", "wav2lip"]
