"""Networks and their training: syncnet_python's S, Wav2Lip's expert SyncNet, AVSyncNet, the generators.

Each network lives in its own module (e.g. `tfbench.models.syncnet_python`) and is imported from there,
so importing `tfbench.models` stays cheap. Metrics import these networks; nothing here imports metrics.
"""
