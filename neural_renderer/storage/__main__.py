"""`python -m neural_renderer.storage` prints the schema as Markdown (the README section)."""

from neural_renderer.storage.schema import markdown

print(markdown())
