"""trustmarl: cooperative MARL with trust regions, jitted end to end in JAX."""
__version__ = "0.1.0"
