"""Backends: each turns the final IR into a plain context and renders templates with it."""
