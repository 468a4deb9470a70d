"""Scene building for the tests and the benchmarks: composed still scenes with known faces.

Kept out of the serving core: nothing a producer, worker or dashboard runs imports it.
"""
