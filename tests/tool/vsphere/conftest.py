"""The vSphere tests' fixtures (defined in vcsim_env)."""

from vcsim_env import api, dk, vcsim, vcsim_bin

__all__ = ["api", "dk", "vcsim", "vcsim_bin"]
