"""Errors raised by the network. Both are catchable by their standard base class."""


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss (learning rate too large, unscaled inputs...)."""


class ModelFileError(ValueError):
    """A model file is missing, corrupted, or does not describe a model we can load."""
