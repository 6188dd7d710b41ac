"""Reusable widgets of the app (Qt only here; data arrives as numpy arrays and core objects)."""
