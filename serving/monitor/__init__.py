"""Monitoring: drift, detection efficacy, data quality, alerts, the retraining trigger and the dashboard.

- :mod:`serving.monitor.job` — one monitoring run (after every scoring run, or ``ringwatch monitor``);
- :mod:`serving.monitor.drift` — PSI and KS; :mod:`serving.monitor.profiles` — what they are measured on;
- :mod:`serving.monitor.efficacy` — precision from verdicts; :mod:`serving.monitor.quality` — ingest quality;
- :mod:`serving.monitor.config` — every threshold's default, overridable by a file;
- :mod:`serving.monitor.alerts`, :mod:`serving.monitor.webhook` — rules and where alerts go;
- :mod:`serving.monitor.history` — the history file; :mod:`serving.monitor.metrics` — Prometheus textfile;
- :mod:`serving.monitor.retrain` — the retraining trigger; :mod:`serving.monitor.dashboard` — the web page.
"""
