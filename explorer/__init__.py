"""Dialect Decoupling Explorer backend (never imports streamlit)."""

__version__ = "0.1.0"
