"""The floor of Heimdall: what every other package may import.

Settings, identifiers, geodesy, the exception hierarchy and DSP primitives live here.
Nothing in ``heimdall.core`` imports another Heimdall package.
"""
