"""Outgoing e-mail: SMTP settings, the durable outbox, templates, the SAQ jobs that send, the dev sink."""
