"""The library's three layers: the core never loads measure, pictures, exercises, matplotlib or ipywidgets.

Each core module is imported in a fresh interpreter (so nothing another test imported is in sys.modules),
then sys.modules is checked. The layers on top of the core load lazily through the package's __getattr__.
"""
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import diffusion_lib

PACKAGE = Path(diffusion_lib.__file__).parent
UPPER_LAYERS = ("measure", "pictures", "exercises")
CORE = sorted(m.name for m in pkgutil.iter_modules([str(PACKAGE)]) if m.name not in UPPER_LAYERS)
FORBIDDEN = ["matplotlib", "ipywidgets", *(f"diffusion_lib.{layer}" for layer in UPPER_LAYERS)]


def _loaded_after(statement: str) -> list[str]:
    code = (f"import sys, json\n{statement}\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'ipywidgets') "
            f"or m.startswith(('diffusion_lib.measure', 'diffusion_lib.pictures', 'diffusion_lib.exercises')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_core_lists_every_module_it_should():
    # a new module lands in one layer on purpose: this list is the table of the README's module map
    assert CORE == ["__main__", "autoencoder", "backbones", "checkpoints", "checks", "cli", "cli_tokens", "config", "data",
                    "device", "embeddings", "forward", "guidance", "images", "interpolation", "masked",
                    "masked_training", "objectives", "pretrained", "samplers", "schedules", "token_networks", "tokens",
                    "toy", "training"]


@pytest.mark.parametrize("module", [m for m in CORE if m != "__main__"])
def test_core_module_imports_no_upper_layer(module):
    loaded = _loaded_after(f"import diffusion_lib.{module}")
    assert loaded == [], f"importing diffusion_lib.{module} loaded {loaded}"


def test_import_diffusion_lib_loads_only_the_core():
    assert _loaded_after("import diffusion_lib") == []


def test_upper_layers_load_lazily_on_attribute_access():
    loaded = _loaded_after("import diffusion_lib as dl\nassert callable(dl.plotting.show_grid)\n"
                           "assert callable(dl.metrics.classify) and callable(dl.exercises.check)")
    assert "matplotlib" in loaded and "diffusion_lib.pictures.plotting" in loaded
    assert "diffusion_lib.measure.metrics" in loaded and "diffusion_lib.exercises" in loaded
    assert "ipywidgets" not in loaded                                  # widgets were not asked for


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'plotter'"):
        diffusion_lib.plotter


def test_the_package_docstring_names_every_module():
    doc = diffusion_lib.__doc__
    for module in [m for m in CORE if m != "__main__"] + list(UPPER_LAYERS):
        assert module in doc, f"diffusion_lib's docstring does not mention {module}"
    for layer in ("measure", "pictures"):
        for m in pkgutil.iter_modules([str(PACKAGE / layer)]):
            assert m.name in doc, f"diffusion_lib's docstring does not mention {layer}.{m.name}"
