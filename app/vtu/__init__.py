"""VTU domain: provider protocol and adapters, catalog, pricing and purchases."""
