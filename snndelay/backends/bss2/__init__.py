"""The BrainScaleS-2 wing: the chip mapping, the emulator, the chip adapter."""
