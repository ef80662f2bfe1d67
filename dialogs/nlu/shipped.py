"""Train the model of the shipped intents and write it into the package.

    python -m dialogs.nlu.shipped

Run it after editing ``dialogs/data/intents.yaml`` (a test fails until you do): the model
is ~1 MB of arrays, and shipping it means a first start serves at once instead of importing
scikit-learn and training.
"""

from __future__ import annotations

from dialogs.nlu.local import LocalNLU, model_key, shipped_model_file


def write_shipped_model() -> int:
    """Train on the shipped intents, save, and return the file's size in bytes."""
    from dialogs.data import INTENTS_FILE

    nlu = LocalNLU.from_file(INTENTS_FILE)
    path = shipped_model_file()
    nlu.save(path, trained_on=model_key(INTENTS_FILE.read_bytes(), "local", False))
    path.chmod(0o644)  # a package file, readable by whoever runs the server
    return path.stat().st_size


def main() -> None:
    size = write_shipped_model()
    print(f"wrote {shipped_model_file().name}: {size:,} bytes")


if __name__ == "__main__":
    main()
