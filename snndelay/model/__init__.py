"""What is trained: delay sharing, delays, networks, losses and the optimiser."""
