"""The `feeds-server` command line: serve, migrate, notifier, rules, export and import, kept apart from the code they drive."""
