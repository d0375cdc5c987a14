"""MLflow: the store, the run recorder, run searches, exported records, logged models, UI views, tracked runs."""
