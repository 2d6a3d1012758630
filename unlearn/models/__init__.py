"""Classifiers. Every model exposes `features(x)` (penultimate activations) and a linear head `fc`,
so methods can read features (adaptive smooth rate) or edit the output layer (boundary expanding)."""
