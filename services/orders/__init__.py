"""Orders: the saga that routes, reserves, confirms and fulfils orders."""
