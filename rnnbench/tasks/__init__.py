"""Built-in benchmark tasks, each an ordinary plugin registered through ``register_tasks``."""
