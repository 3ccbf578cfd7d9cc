"""A Kaggle-style competition pipeline around a from-scratch NumPy sigmoid network."""

__version__ = "0.1.0"
