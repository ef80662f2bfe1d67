"""Bot texts, one YAML file per language (see dialogs/catalogue.py)."""
