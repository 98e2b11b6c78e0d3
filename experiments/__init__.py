"""Experiments that answer one question each, built from the stages' entry functions."""
