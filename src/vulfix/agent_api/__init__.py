"""The agent API's server side: `/agent/v1` routes over the domain's agent ports."""

from vulfix.agent_api.notifier import MemoryJobNotifier
from vulfix.agent_api.routes import agent_routes

__all__ = ["MemoryJobNotifier", "agent_routes"]
