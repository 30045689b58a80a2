from app.config.settings import ConfigError, Settings, get_settings, load_settings, validate

__all__ = ["ConfigError", "Settings", "get_settings", "load_settings", "validate"]
