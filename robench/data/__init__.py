"""Dataset sources: the shipped demo subset, image folders, released corruption datasets."""
