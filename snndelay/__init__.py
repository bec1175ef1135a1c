"""snndelay: spiking networks that learn weights and delays with exact event-based gradients."""

__version__ = "0.1.0"
