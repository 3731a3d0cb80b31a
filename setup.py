"""The one thing pyproject.toml cannot say yet (setuptools calls its `ext-modules` table
experimental): the per-frame audio work in C, `telephony/audio/_kernels.c`.

It is optional: where no C compiler is found the install goes on without it, and the same work
runs in Python and numpy (slower, the same sound; `telephony.audio.compiled.COMPILED` says
which). No fused multiply-add, so the output does not depend on the compiler or the CPU. The
image compiles the same file with the same flags (`infra/build-kernels.sh`).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "telephony.audio._kernels",
            sources=["telephony/audio/_kernels.c"],
            optional=True,
            extra_compile_args=["-O3", "-ffp-contract=off"],
        )
    ]
)
