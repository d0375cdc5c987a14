"""Servers over a store: the MLflow UI on a sweep's ranked runs and optuna-dashboard on a sweep's study."""
