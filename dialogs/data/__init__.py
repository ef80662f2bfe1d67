"""Shipped data files: the default support intents and the FAQ answers."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
INTENTS_FILE = DATA_DIR / "intents.yaml"
FAQ_FILE = DATA_DIR / "faq.yaml"
