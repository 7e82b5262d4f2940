"""faceqa: ask questions about the people in a photo."""

__version__ = "0.1.0"
