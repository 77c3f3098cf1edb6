"""Assembling a system from a validated config and cached images into LinuxKit's layout."""
