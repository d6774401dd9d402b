"""Rendering: colormaps, the spectrogram payload codec, axes, and a PNG of a view from a plain description.

This layer knows spectrograms and patch grids but nothing of widgets: a widget describes what it shows as a
:class:`~audiovis.rendering.view.View` and these modules draw it exactly as the browser does.
"""
