"""Reseller JSON API v1 (see README.md in this folder and docs/api.md)."""
