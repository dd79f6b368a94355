"""Project tools that are not part of the library: the browser installer and a pytest plugin."""
