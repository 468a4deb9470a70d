"""Side jobs on RQ: signed violation and alert webhooks, compliance alerts, offline video analysis.

`maskwatch jobs` (:mod:`worker.jobs.runner`) runs them: one non-forking RQ worker, a dispatcher
that turns violation events into webhook jobs, and the periodic alert evaluator. Records both the
jobs and the dashboard read live in :mod:`maskwatch.jobstore`.
"""
