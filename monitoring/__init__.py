"""Monitoring: whylogs profiles of training and served data, drift reports and alerts.

whylogs is no longer developed upstream, so it stays behind this package:
``monitoring.profiles`` is the only module that imports it, and nothing
outside ``monitoring/`` should. The service plugs in ``monitoring.profiler``
(``ProfileLogger``) and ``monitoring.predictions`` (``PredictionLog``);
training calls ``monitoring.reference.write_reference_profile``; cron and CI
run ``python -m monitoring compare``.
"""

from __future__ import annotations

import os

# whylogs posts usage statistics from a background thread on first use unless
# this is set before it is imported; a serving process must not phone home.
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")
