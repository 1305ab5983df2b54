"""The host side: the agent API client and the simulated fleet (talks HTTP only)."""
