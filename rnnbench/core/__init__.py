"""The plugin core: the hook specifications, the typed registries they fill and the plugin manager."""
