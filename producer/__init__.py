"""The producer app: capture the registered cameras and push JPEG frames onto each camera's frames stream.

One capture thread per camera (:mod:`producer.capture`) reads its source (:mod:`producer.sources`)
at the camera's target fps (:mod:`producer.pacing`), lets through only frames with motion and
keyframes (:mod:`producer.gating`), downscales and encodes them (:mod:`maskwatch.vision.jpeg`) and
writes through :mod:`producer.sink`. The :mod:`producer.supervisor` starts and stops the captures
of the cameras this process holds (registry, leases and fair share: :mod:`maskwatch.ownership`);
:mod:`producer.backpressure` watches the workers' lag per camera; :mod:`producer.status` and
:mod:`producer.metrics` report; :mod:`producer.service` ties it together behind ``maskwatch producer``.
"""
