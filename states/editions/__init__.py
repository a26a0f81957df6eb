"""Policy edition files (YAML), one per document edition, validated on load by states.edition."""
