"""The Corrupted CIFAR-10 corruptions, being split into modules: for this one commit the whole
former datasets/corruptions.py is datasets/corruptions/weather.py (a pure rename, so history
follows it) and this package re-exports all of its names; the next commit splits it."""

from datasets.corruptions import weather as _former_module

globals().update({name: value for name, value in vars(_former_module).items() if not name.startswith("__")})
