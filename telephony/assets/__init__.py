"""Recorded prompts (mu-law 8 kHz), made by scripts/make_fixtures.py."""
