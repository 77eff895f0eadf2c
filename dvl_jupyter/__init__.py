"""dvl_jupyter: which training points help or hurt your model, inside Jupyter."""

__version__ = "0.1.0"
