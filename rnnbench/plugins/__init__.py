"""The built-in cell plugins: ordinary plugins, listed in ``rnnbench.plugin_manager.DEFAULT_PLUGINS``."""
