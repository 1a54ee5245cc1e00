"""The continuous-training loop: monitor, retrain, shadow, promote, roll back.

``python -m lifecycle --help``.
"""
