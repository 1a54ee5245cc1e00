"""Monitoring: profiles and drift, delayed-label performance, training/serving skew, alerts.

whylogs is no longer developed upstream, so it stays behind this package:
``monitoring.profiles`` is the only module that imports it, and nothing
outside ``monitoring/`` should. The service plugs in ``monitoring.profiler``
(``ProfileLogger``), ``monitoring.predictions`` (``PredictionLog``) and
``monitoring.served_features`` (``ServedFeatureLog``), run in a writer process
through ``monitoring.offload``; training calls
``monitoring.reference.write_reference_profile``; cron and CI run
``python -m monitoring compare|performance|skew``. Monitoring reads the model
registry by its contract (``monitoring.registry``) and never imports
``serving/`` or ``training/``.
"""

from __future__ import annotations

import os

# whylogs posts usage statistics from a background thread on first use unless
# this is set before it is imported; a serving process must not phone home.
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")
