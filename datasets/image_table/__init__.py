"""The image_table dataset, being split into modules: for this one commit the whole former
datasets/image_table.py is datasets/image_table/dataset.py (renamed, so history follows it) and
this package re-exports all of its names; the next commit splits it."""

from datasets.image_table import dataset as _former_module

globals().update({name: value for name, value in vars(_former_module).items() if not name.startswith("__")})
