"""The benchmarks' scenarios: what each phase of a ``tools/benchmarks``
script computes and measures, on top of :mod:`mmal.testing` (timing, peak
memory, score comparisons, :func:`~mmal.testing.scenario.selection_scenario`).

The scripts import them as ``scenarios.<name>`` (their folder is first on
``sys.path`` when run); the tests' ``conftest.py`` adds the folder too.
"""
