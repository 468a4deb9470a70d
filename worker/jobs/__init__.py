"""Side jobs on RQ: signed violation and alert webhooks, compliance alerts, offline video analysis.

`maskwatch jobs` (:mod:`worker.jobs.runner`) runs them: RQ workers in threads (:mod:`worker.jobs.pool`),
several on the webhook queue and one on the analysis queue, a dispatcher that turns violation
events into webhook jobs, and the periodic alert evaluator. Records both the
jobs and the dashboard read live in :mod:`maskwatch.jobstore`.
"""
