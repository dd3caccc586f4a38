"""IMRT versus particle comparative planning on identical anatomy, prior course and protocol.

``reirrad_opt.compare(case, protocol, ...)`` is :func:`reirrad_opt.compare.run.compare`; this
package is itself callable with the same arguments, so the call works whether the name
``reirrad_opt.compare`` resolves to the function or to this package.
"""
import sys as _sys
import types as _types

from .folder import write_comparison_folder
from .run import Comparison, compare

__all__ = ["compare", "Comparison", "write_comparison_folder"]


class _CallablePackage(_types.ModuleType):
    def __call__(self, *args, **kwargs) -> Comparison:
        """Same as :func:`reirrad_opt.compare.run.compare`."""
        return compare(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallablePackage
