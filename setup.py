"""The C part of the media forwarder (streaming/_fanout.c); everything else is in pyproject.toml.

Optional: without a C compiler Dais installs and runs on the pure-Python fan-out, which does the
same work at a higher cost per viewer (docs/media.md has the figures).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "streaming._fanout",
            ["streaming/_fanout.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
