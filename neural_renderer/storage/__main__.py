"""`python -m neural_renderer.storage` prints the schema as Markdown (docs/SCHEMA.md holds it)."""

from neural_renderer.storage.schema import markdown

print(markdown())
