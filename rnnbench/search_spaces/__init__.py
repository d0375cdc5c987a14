"""Built-in Optuna search spaces, each an ordinary plugin registered through ``register_search_spaces``."""
