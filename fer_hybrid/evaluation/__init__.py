"""Evaluation beyond the 48x48 test split: calibration, FER2013 faces "in the frame", labelled folders."""
