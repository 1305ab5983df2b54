"""`vulfix.console`: the web console, server-rendered pages over the CWP actions."""

from vulfix.console.app import console_routes, console_templates
from vulfix.console.context import ConsoleContext
from vulfix.console.sessions import SessionCodec

__all__ = ["ConsoleContext", "SessionCodec", "console_routes", "console_templates"]
