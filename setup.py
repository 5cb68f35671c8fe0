"""Extension build only; the project's metadata is in pyproject.toml.

Every ext/NAME.pyx becomes the module spoolproxy._ext.NAME, and ext/NAME.pyi is
installed beside it. SPOOLPROXY_NO_EXTENSIONS=1 at build time builds none (the
package then runs on its pure-Python twins). SPOOLPROXY_EXT_ONLY=a,b builds only
ext/a.pyx and ext/b.pyx (for working on one module while another is half-written).
"""
import os
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
EXT_DIR = "ext"


def _disabled() -> bool:
    return os.environ.get("SPOOLPROXY_NO_EXTENSIONS", "") not in ("", "0")


class _BuildExtWithStubs(build_ext):
    """build_ext that also puts ext/NAME.pyi next to the built module (wheel and --inplace)."""

    def run(self):
        super().run()
        for ext in self.extensions:
            stub = HERE / EXT_DIR / (ext.name.rpartition(".")[2] + ".pyi")
            if stub.exists():
                target = Path(self.get_ext_fullpath(ext.name)).with_name(stub.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(stub, target)


def _extensions():
    if _disabled():
        return []
    from Cython.Build import cythonize

    pyx = sorted(Path(EXT_DIR).glob("*.pyx"))  # relative: setuptools wants relative sources
    only = {n.strip() for n in os.environ.get("SPOOLPROXY_EXT_ONLY", "").split(",") if n.strip()}
    if only:
        pyx = [p for p in pyx if p.stem in only]
    modules = [Extension(f"spoolproxy._ext.{p.stem}", [str(p)], extra_compile_args=["-O2"]) for p in pyx]
    return cythonize(
        modules,
        build_dir="build/cython",
        compiler_directives={"language_level": "3", "embedsignature": True},
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": _BuildExtWithStubs})
