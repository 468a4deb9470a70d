"""Helpers of the tests, shared between test modules; no tests here (hence not named ``test_*``)."""
