__version__ = "0.1.0"

# The hosts that ship with h2t_nb (GCL, LDAM-DRW, RIDE, ResLT) join the registries of models, losses and methods here,
# once, before any configuration is checked; a user's own method registers the same way (05c_methods).
from .hosts import register_hosts
register_hosts()
