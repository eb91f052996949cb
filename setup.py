"A thin shim for tools that still run `python setup.py`: every setting lives in pyproject.toml ([project], [tool.nbdev])."
from setuptools import setup

setup()
