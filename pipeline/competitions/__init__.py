"""Built-in competitions: generators that write a Kaggle-layout folder from a seed."""

from pipeline.competitions.builtin import BUILTIN, generate

__all__ = ["BUILTIN", "generate"]
