"""Landmark track: dlib 68-point landmarks -> geometric features -> gradient-boosted classifiers."""
