"""The elastix baseline (itk-elastix): the :class:`Elastix` method, its parameter maps and the
conversion of ITK images and transformix fields to the project's conventions.

Importing this package does not import ITK; ITK loads on the first registration.
"""

from methods.elastix.adapter import Elastix

__all__ = ["Elastix"]
