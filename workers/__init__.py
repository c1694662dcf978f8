"""RQ jobs: they take ids, reload rows and call services. ``helpdesk`` never imports this."""
