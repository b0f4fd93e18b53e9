"""Email: the mail interface, its backends, rendering and (later) the notifier worker."""
