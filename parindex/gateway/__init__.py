"""The front door of `parindex up`: one address, the same routes as deploy/caddy/Caddyfile.

docs/architecture.md, decision 30.
"""
