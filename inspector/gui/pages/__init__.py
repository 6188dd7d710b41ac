"""The pages of the main window; each gets the shared Session and composes core calls."""
