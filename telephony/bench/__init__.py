"""Benchmarks behind `telephony bench ...`: figures are printed, never asserted."""
