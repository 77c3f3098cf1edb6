"""Output formats, one module per family, registered by name (see `registry`)."""
