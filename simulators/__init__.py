"""Local stand-ins for the hub's providers (local runs and end-to-end tests).

Razorpay, Twilio, SendGrid, Google's OAuth token endpoint, the Workspace
Directory API, FCM, the school's mobile app backend and the SMS gateway.

Production talks to the real providers; only their base URLs change.
"""

from simulators.app import create_app
from simulators.client import SimulatorClient

__all__ = ["SimulatorClient", "create_app"]
