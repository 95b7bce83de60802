"""Speed and memory measurements of tfbench against reference pipelines and the compute limit (JSON out)."""
