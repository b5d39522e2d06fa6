"""Signal handlers: shop signals and login/logout become tracked events and visitor merges."""
