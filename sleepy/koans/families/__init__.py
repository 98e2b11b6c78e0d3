"""Generator templates, one module per koan family; importing this package registers them all."""

from importlib import import_module

from sleepy.koan.model import FAMILIES

for _family in FAMILIES:
    try:
        import_module(f"{__name__}.{_family}")
    except ModuleNotFoundError as e:  # a family without templates yet
        if e.name != f"{__name__}.{_family}":
            raise
