"""`python -m simulators`: serve the provider simulators with the hub's settings."""

from core.settings import get_settings
from simulators.server import serve

serve(get_settings())
