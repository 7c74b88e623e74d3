"""petseg_lib: the small helper package shared by the petseg course notebooks."""

__version__ = "0.1.0"
