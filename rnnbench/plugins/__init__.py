"""The built-in cell plugins: ordinary plugins, listed in ``rnnbench.core.plugin_manager.DEFAULT_PLUGINS``."""
