"""Staff-only operations console."""
