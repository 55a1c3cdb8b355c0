"""Checks of deploy/: compose file, Dockerfile, NATS, PostgreSQL and Caddy configuration."""
