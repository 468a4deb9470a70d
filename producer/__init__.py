"""The producer app: capture the registered cameras and push JPEG frames onto the frames stream.

One capture thread per camera (:mod:`producer.capture`) reads its source (:mod:`producer.sources`)
at the camera's target fps (:mod:`producer.pacing`), downscales and encodes (:mod:`producer.imaging`)
and writes through :mod:`producer.sink`. The :mod:`producer.supervisor` decides which cameras this
process captures (registry, leases from :mod:`producer.leases`, fair share); :mod:`producer.backpressure`
watches the workers' lag; :mod:`producer.status` and :mod:`producer.metrics` report;
:mod:`producer.service` ties it together behind ``maskwatch producer``.
"""
