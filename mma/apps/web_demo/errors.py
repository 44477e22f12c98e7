"""The web demo's one exception type (shared by the session and the upload checks)."""


class DemoError(Exception):
    """A problem with the request or the model files, worded for the page."""
