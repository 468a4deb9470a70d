"""The worker's Prometheus metrics (served on its own port by maskwatch.metrics_server)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES = Counter("maskwatch_worker_frames_total", "Frames this worker counted (acknowledged and written)")
FACES = Counter("maskwatch_worker_faces_total", "Faces this worker classified", ["label"])
DEAD_LETTERED = Counter("maskwatch_worker_dead_lettered_total", "Frames this worker moved to the dead-letter stream", ["reason"])
DUPLICATES = Counter("maskwatch_worker_duplicates_total", "Frames processed but already acknowledged by another worker (not counted)")
BATCH_FRAMES = Histogram("maskwatch_worker_batch_size", "Frames per batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128))
BATCH_CROPS = Histogram("maskwatch_worker_batch_crops", "Face crops per classifier forward pass", buckets=(0, 1, 4, 16, 32, 64, 128, 256))
INFERENCE = Histogram("maskwatch_worker_inference_seconds", "Classifier forward pass time per batch",
                      buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
DETECTION = Histogram("maskwatch_worker_detection_seconds", "Decode + face detection time per batch",
                      buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
LATENCY = Histogram("maskwatch_worker_capture_to_result_seconds", "Capture time to result written, per frame",
                    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0))
LAG = Gauge("maskwatch_worker_group_lag_frames", "Frames in the stream not yet delivered to the workers group")
