"""Optuna's study plots for the parent run, drawn in the MLflow writer process."""

from __future__ import annotations

import warnings
from typing import Any

from pipeline.tune.study import make_storage, quiet_optuna

MAX_LEGEND = 12  # legend entries a study plot keeps (intermediate values: one per trial)


def stored_study_figures(url: str, name: str) -> dict[str, Any]:
    """`study_figures` of a study read back from its storage (in the MLflow writer process)."""
    import optuna

    quiet_optuna()
    return study_figures(optuna.load_study(study_name=name, storage=make_storage(url)))


def preload_figures() -> None:
    """The plotting imports, done by the writer process while the first trial trains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (Optuna's plots draw through pyplot)
    import optuna.visualization.matplotlib  # noqa: F401
    import sklearn.ensemble  # noqa: F401  (the fANOVA importances' forest: ~0.8 s to import)


def study_figures(study: Any) -> dict[str, Any]:
    """Optuna's optimisation-history, intermediate-values and importance plots (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    import optuna.visualization.matplotlib as vis

    figures: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib backend is "experimental"
        for name, plot in (("optimization_history", vis.plot_optimization_history),
                           ("intermediate_values", vis.plot_intermediate_values),
                           ("param_importances", vis.plot_param_importances)):
            try:
                ax = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError):
                continue  # e.g. importances need two complete trials that differ
            first = ax.flat[0] if hasattr(ax, "flat") else ax
            legend = first.get_legend()
            if legend is not None and len(legend.get_texts()) > MAX_LEGEND:
                legend.remove()  # one entry per trial: past a dozen it only hides the plot
            if first.figure.get_layout_engine() is None:  # importances: long names were cut
                first.figure.set_layout_engine("tight")
            figures[name] = first.figure
    return figures

