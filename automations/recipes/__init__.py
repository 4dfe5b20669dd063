"""The recipe language."""
