"""The benchmark runner, the run folder store, statistics and run comparison."""
