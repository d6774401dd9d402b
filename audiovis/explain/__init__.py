"""Explanations computed from a model and its input: faithfulness of a per-patch map (deletion /
insertion), gradient-weighted attention relevance, integrated gradients, and the sound of patches.

The modules here take a model, its input spectrogram and a :class:`~audiovis.PatchGrid`; they never
import :mod:`audiovis.analysis` (the Analysis calls them).
"""
