"""Build the tiny random models that .test/tiny/config.yaml studies: a llama (models:) and a
llama whose tokenizer has a chat template (chat_models:), as Hugging Face folders.

    python tools/build_tiny_models.py .test/tiny/models

The models are the workflow tests' own (tests/tiny.py, built from a config in code): random
weights, seeded, so the same on every machine. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from tiny import build_tiny_chat_model, build_tiny_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where the llama/ and chat/ folders go")
    args = parser.parse_args()
    build_tiny_model(args.folder / "llama", "llama")
    build_tiny_chat_model(args.folder / "chat")
    print(f"tiny models in {args.folder}/llama and {args.folder}/chat")


if __name__ == "__main__":
    main()
