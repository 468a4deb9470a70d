"""The worker app: consume frames, detect and classify faces in batches, write results exactly once.

Also home of the side jobs (``worker.jobs``) that RQ runs: webhooks, alerts, offline analysis.
"""
