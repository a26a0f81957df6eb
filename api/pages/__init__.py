"""Server-rendered pages (Chinese UI, no front-end build step)."""
