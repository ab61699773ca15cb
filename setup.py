"""Build the easfast._core extension; all metadata lives in pyproject.toml.

Environment switches:
  EASFAST_DEBUG=1         compile with -O0 -g and assertions on
  EASFAST_CYTHON_TRACE=1  line tracing, for coverage of the .pyx
  EASFAST_ANNOTATE=1      write the Cython HTML annotation next to the .pyx
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


directives = {
    "language_level": 3,
    "embedsignature": True,
}
macros = []
compile_args = ["-O3"]

if _flag("EASFAST_DEBUG"):
    compile_args = ["-O0", "-g", "-UNDEBUG"]
if _flag("EASFAST_CYTHON_TRACE"):
    directives["linetrace"] = True
    macros.append(("CYTHON_TRACE_NOGIL", "1"))

extension = Extension(
    "easfast._core",
    ["src/easfast/_core.pyx"],
    define_macros=macros,
    extra_compile_args=compile_args,
)

setup(
    ext_modules=cythonize(
        [extension],
        compiler_directives=directives,
        annotate=_flag("EASFAST_ANNOTATE"),
    ),
)
