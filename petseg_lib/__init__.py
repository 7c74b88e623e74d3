"""petseg_lib: the small helper package shared by the petseg course notebooks."""

__version__ = "0.1.0"

# Where the course lives; the notebooks' Colab setup cell clones it from here.
REPOSITORY_URL = "https://github.com/petseg-course/petseg"
