"""Saving results under their inputs' names: naming rules, collision-free names, atomic writes.

Entry point: naming.py (a result's relative path from the input's); output_names.py keeps the
names of one batch apart; safe_write.py writes without ever replacing a user's file by accident.
"""
