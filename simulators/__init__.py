"""Local stand-ins for Razorpay, Twilio and SendGrid (local runs and end-to-end tests).

Production talks to the real providers; only their base URLs change.
"""

from simulators.app import create_app
from simulators.client import SimulatorClient

__all__ = ["SimulatorClient", "create_app"]
