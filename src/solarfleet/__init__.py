"""solarfleet: an open backend for fleets of pay-as-you-go solar home systems."""

__version__ = "0.1.0"
