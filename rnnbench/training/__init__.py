"""Training one model: its configuration, the model and its recipe, the loop, the metrics it reports, the LRD score."""
