"""Built-in plugins, registered by name in :data:`elspeth.plugins.BUILTIN_PLUGINS`."""
