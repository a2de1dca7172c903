"""Versioned event and API schemas shared by every service: the only code services share about
each other. Import from the submodules (`services.contracts.inventory`, ...)."""
