"""CNN track: backbone registry, VGGFace, and training."""
