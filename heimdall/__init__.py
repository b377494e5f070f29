"""Heimdall: find radio transmitters from a network of receivers.

The subpackages are the repository's top-level folders (``heimdall/<name>`` links to
``<name>/``): ``core`` (the floor: settings, ids, geodesy, DSP primitives), ``schemas``,
``producers``, ``streams``, ``consumers``, ``ml``, and ``infra`` (the roof: runtime and CLI).
"""

__version__ = "0.1.0"
