"""Scene building for the tests and the benchmarks: scenes with known faces.

``compose`` makes still composed scenes (face crops pasted on a background); ``walking`` makes
videos of people walking through a lobby, with ground truth per face and per person.
Kept out of the serving core: nothing a producer, worker or dashboard runs imports it.
"""
