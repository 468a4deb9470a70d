"""The Prometheus metrics of one worker, served on its own port by :func:`maskwatch.metrics_server.serve_metrics`.

Each worker has a registry of its own, so several workers can live in one process (tests, bench).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.frames = Counter("maskwatch_worker_frames_total", "Frames this worker counted (acknowledged and written)",
                              registry=r)
        self.faces = Counter("maskwatch_worker_faces_total", "Faces this worker classified", ["label"], registry=r)
        self.dead_lettered = Counter(
            "maskwatch_worker_dead_lettered_total",
            "Frames this worker moved to the dead-letter stream, by reason: malformed (the codec refused a field), "
            "camera (the entry names another camera than its stream's), failed (raised when run alone), "
            "killed (the worker died on each of its isolated attempts)", ["reason"], registry=r)
        self.errors = Counter("maskwatch_worker_errors_total",
                              "Batches or lease ticks that failed and were retried, their frames left pending, by "
                              "cause: redis_oom (Redis out of memory), redis (another Redis error), exception",
                              ["cause"], registry=r)
        self.isolated = Counter("maskwatch_worker_isolated_frames_total",
                                "Frames run alone (redelivered after a crash, or of a batch that failed) to tell a "
                                "poison frame from a crashed worker", registry=r)
        self.consumers_removed = Counter("maskwatch_worker_consumers_removed_total",
                                         "Consumers long idle and holding no frame removed from the cameras' groups",
                                         registry=r)
        self.duplicates = Counter("maskwatch_worker_duplicates_total",
                                  "Frames processed but already acknowledged by another worker (not counted)",
                                  registry=r)
        self.batch_frames = Histogram("maskwatch_worker_batch_size", "Frames per batch",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.batch_crops = Histogram("maskwatch_worker_batch_crops", "Face crops per classifier forward pass",
                                     buckets=(0, 1, 4, 16, 32, 64, 128, 256), registry=r)
        self.inference = Histogram("maskwatch_worker_inference_seconds", "Classifier forward pass time per batch",
                                   buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=r)
        self.detection = Histogram("maskwatch_worker_detection_seconds", "Decode + face detection time per batch",
                                   buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=r)
        self.latency = Histogram("maskwatch_worker_capture_to_result_seconds",
                                 "Capture time to result written, per frame",
                                 buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0), registry=r)
        self.lag = Gauge("maskwatch_worker_group_lag_frames",
                         "Frames of the cameras this worker holds not yet read by it", registry=r)
        self.cameras = Gauge("maskwatch_worker_cameras", "Cameras this worker holds (worker leases)", registry=r)
