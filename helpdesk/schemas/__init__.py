"""Marshmallow schemas: they shape and validate; they never query or read the current user."""
