"""Trustladder agent client."""
